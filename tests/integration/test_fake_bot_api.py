"""The sandbox Bot API speaks Telegram's wire format: JSON and form bodies, its error bodies."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import RequestData

from bot.sandbox.bot_api import (
    ApiError,
    BotApiServer,
    FakeBotApi,
    FakeUser,
    InProcessRequest,
    _parse_with_html_parser,
    _scan_html,
    decode_params,
    parse_html,
)


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeBotApi, httpx.AsyncClient, str]]:
    api = FakeBotApi()
    server = BotApiServer(api)
    await server.start()
    async with httpx.AsyncClient(timeout=5) as client:
        yield api, client, f"{server.base_url}{api.token}"
    await server.stop()


async def test_json_and_form_bodies_send_messages_into_the_transcript(
    served: tuple[FakeBotApi, httpx.AsyncClient, str],
) -> None:
    api, client, root = served
    ana = FakeUser(42)
    api.send_text(ana, "/start")
    markup = {"inline_keyboard": [[{"text": "Abrir", "callback_data": "env:1"}]]}
    sent = await client.post(
        f"{root}/sendMessage",
        json={
            "chat_id": 42,
            "text": "<b>Olá</b> &amp; bem-vinda",
            "parse_mode": "HTML",
            "reply_markup": markup,
        },
    )
    body = sent.json()
    assert sent.status_code == 200 and body["ok"] is True
    assert body["result"]["text"] == "Olá & bem-vinda"
    form = await client.post(
        f"{root}/editMessageText",
        data={
            "chat_id": "42",
            "message_id": str(body["result"]["message_id"]),
            "text": "editado",
            "reply_markup": json.dumps(markup),
        },
    )
    assert form.json()["result"]["text"] == "editado"
    [user_message, bot_message] = api.messages(42)
    assert (user_message.from_bot, bot_message.html, bot_message.edits) == (False, "editado", 1)
    again = await client.post(
        f"{root}/editMessageReplyMarkup",
        json={"chat_id": 42, "message_id": bot_message.message_id, "reply_markup": markup},
    )
    assert again.status_code == 400
    assert again.json()["description"].startswith("Bad Request: message is not modified")
    action = await client.post(f"{root}/sendChatAction", json={"chat_id": 42, "action": "typing"})
    assert action.json() == {"ok": True, "result": True}


async def test_errors_have_telegrams_bodies(
    served: tuple[FakeBotApi, httpx.AsyncClient, str],
) -> None:
    api, client, root = served
    api.send_text(FakeUser(7), "oi")
    wrong = await client.post(root.replace(api.token, "1:wrong") + "/getMe")
    assert (wrong.status_code, wrong.json()["description"]) == (401, "Unauthorized")
    assert (await client.post(f"{root}/sendDice", json={})).status_code == 404
    bad_html = await client.post(
        f"{root}/sendMessage", json={"chat_id": 7, "text": "<Ana>", "parse_mode": "HTML"}
    )
    assert bad_html.status_code == 400 and "can't parse entities" in bad_html.json()["description"]
    too_long = await client.post(f"{root}/sendMessage", json={"chat_id": 7, "text": "x" * 4097})
    assert too_long.json()["description"] == "Bad Request: message is too long"
    button = {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}
    refused = await client.post(
        f"{root}/sendMessage", json={"chat_id": 7, "text": "x", "reply_markup": button}
    )
    assert refused.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
    api.fail_next("sendMessage", 429, retry_after=3)
    limited = await client.post(f"{root}/sendMessage", json={"chat_id": 7, "text": "x"})
    assert limited.status_code == 429
    assert limited.json()["parameters"] == {"retry_after": 3}
    api.block(7)
    blocked = await client.post(f"{root}/sendMessage", json={"chat_id": 7, "text": "x"})
    assert blocked.json() == {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }


async def test_get_updates_long_polls_until_an_update_arrives_and_forgets_below_the_offset(
    served: tuple[FakeBotApi, httpx.AsyncClient, str],
) -> None:
    api, client, root = served
    poll = asyncio.create_task(client.post(f"{root}/getUpdates", json={"timeout": 5}))
    await asyncio.sleep(0.05)
    assert not poll.done()
    api.send_text(FakeUser(9), "/envelopes")
    updates = (await poll).json()["result"]
    assert [u["message"]["text"] for u in updates] == ["/envelopes"]
    assert updates[0]["message"]["entities"][0]["type"] == "bot_command"
    after = updates[-1]["update_id"] + 1
    empty = await client.post(f"{root}/getUpdates", json={"offset": after, "timeout": 0})
    assert empty.json()["result"] == [] and api.pending_updates() == 0
    query = api.tap(FakeUser(9), api.messages(9)[0], "env:1")
    tap = (await client.post(f"{root}/getUpdates", json={"offset": after})).json()["result"][0]
    assert tap["callback_query"]["data"] == "env:1"
    answered = await client.post(
        f"{root}/answerCallbackQuery", data={"callback_query_id": query, "text": "ok"}
    )
    assert answered.json()["result"] is True and api.answer_for(query) is not None


# -- Telegram HTML: the one-pass scan against html.parser, the reference ----------------------

# Markup in the shapes the scan reads itself; each answer must be html.parser's.
SCANNED = [
    "<b>bold <i>nested</i> and <u><s>more</s></u></b> tail",
    "<B>upper</b> <STRONG>x</strong>",
    '<a href="https://example.com/?a=1&amp;b=2">link</a>',
    "<a href='single \"quoted\" > inside'>x</a>",
    '<a href = "spaced">x</a>',
    "<a href=https://example.com/x/>bare value with slashes</a>",
    '<tg-spoiler>secret</tg-spoiler> <span class="tg-spoiler">also</span>',
    "<blockquote expandable>quoted\nlines</blockquote>",
    '<pre><code class="language-python">x &lt; 1</code></pre>',
    '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
    "&amp; &lt; &gt; &quot; &#x27; &#39; ç — ✓",
    "&#8212; &#x2014; &#128512; &nbsp; &amp &copy &unknown; & ; &#; &#x;",
    "x &amp;amp; y &amp;lt; z",
    "&lt<b>;</b> a reference cut by a tag",
    "&am<b>p;</b>",
    "1 < 2, 3 <= 4, a <3 and a< b <",
    "<",
    "plain text, no markup",
    "",
    "<b>unclosed",
    "<b><i>crossed</b></i>",
    "</b> closed first",
    "<b>x</i></b>",
    "<b>x</b >",
]
# Markup outside those shapes: html.parser reads the whole text.
PARSED = [
    "<x>unknown</x>",
    "<br/>",
    "<b/>",
    "<script>alert(1)</script>",
    "<textarea><b></textarea>",
    "<!-- a comment -->text",
    "<b>x</ b>",
    "<b",
    '<a href="never closed>x',
    "<![CDATA[x]]>",
    "<?pi?>text",
    '<a title="x"title="y">x</a>',
    "<b\u00a0>x</b>",
]


@pytest.mark.parametrize("text", SCANNED)
def test_the_html_scan_reads_real_markup_exactly_as_html_parser(text: str) -> None:
    assert _scan_html(text) is not None
    assert _scan_html(text) == _parse_with_html_parser(text)


@pytest.mark.parametrize("text", PARSED)
def test_other_markup_goes_to_html_parser(text: str) -> None:
    assert _scan_html(text) is None
    visible, error = _parse_with_html_parser(text)
    if error is None:
        assert parse_html(text) == visible
    else:
        with pytest.raises(ApiError) as raised:
            parse_html(text)
        assert raised.value.description == f"Bad Request: can't parse entities: {error}"


def test_parse_html_answers_telegrams_visible_text_and_errors() -> None:
    assert parse_html('<b>Olá</b> &amp; <a href="https://x.y/?a=1&amp;b=2">tchau</a>') == (
        "Olá & tchau"
    )
    assert parse_html("&lt;b&gt; &#39;a&#39; &#x2014; &amp;amp;") == "<b> 'a' — &amp;"
    errors = {
        "<x>a</x>": 'Unsupported start tag "x"',
        "<b>a</i></b>": 'Unmatched end tag "i"',
        "<b><i>a</b></i>": 'Unmatched end tag "b"',
        "<b>a": 'Can\'t find end tag corresponding to start tag "b"',
        "<b><i>a</i>": 'Can\'t find end tag corresponding to start tag "b"',
        "</b><x>": 'Unmatched end tag "b"',
    }
    for text, error in errors.items():
        with pytest.raises(ApiError) as raised:
            parse_html(text)
        assert raised.value.description == f"Bad Request: can't parse entities: {error}"


def test_the_html_scan_agrees_with_html_parser_on_random_markup() -> None:
    pieces = [
        *("<", ">", "/", "!", "=", '"', "'", " ", "\n", "\t", "\u00a0", "&", ";", "#", "x"),
        *("b", "B", "tg-spoiler", "href", "&amp;", "&lt;", "&gt", "&#39;", "&#x27", "&nbsp;"),
        *("<b>", "</b>", "<i>", "</i>", "</I>", '<a href="h?a=1&amp;b">', "</a>", "<br/>"),
        *("<blockquote expandable>", "</blockquote>", "<x>", "</ b>", "<!--", "-->", "é"),
    ]
    rng = random.Random(20261127)
    scanned = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        fast = _scan_html(text)
        if fast is not None:
            scanned += 1
            assert fast == _parse_with_html_parser(text), text
    assert scanned > 1000


# -- the wire: answers, message lookup, the in-process transport ------------------------------


async def test_edits_find_any_message_of_the_chat_and_refuse_as_telegram_does() -> None:
    api = FakeBotApi()
    ana = FakeUser(42)
    first_user_message = api.send_text(ana, "/start")
    sent = []
    for i in range(30):
        _, body = await api.handle(api.token, "sendMessage", {"chat_id": 42, "text": f"n.º {i}"})
        sent.append(json.loads(body)["result"]["message_id"])
        api.send_text(ana, f"resposta {i}")
    # The first bot message, under 59 later ones; then the newest, sent after the first lookup.
    for message_id in (sent[0], sent[-1]):
        status, body = await api.handle(
            api.token, "editMessageText", {"chat_id": 42, "message_id": message_id, "text": "novo"}
        )
        assert status == 200 and json.loads(body)["result"]["edit_date"]
    assert [m.message_id for m in api.messages(42) if m.edits] == [sent[0], sent[-1]]
    refused = {
        first_user_message.message_id: "Bad Request: message can't be edited",
        10**6: "Bad Request: message to edit not found",
        sent[0]: "Bad Request: message is not modified: specified new message content and "
        "reply markup are exactly the same as a current content and reply markup of the message",
    }
    for message_id, description in refused.items():
        status, body = await api.handle(
            api.token, "editMessageText", {"chat_id": 42, "message_id": message_id, "text": "novo"}
        )
        assert (status, json.loads(body)["description"]) == (400, description)


async def test_answers_are_the_bytes_json_dumps_writes() -> None:
    api = FakeBotApi()
    api.send_text(FakeUser(42), "/start")
    rows = [[{"text": f"Botão {i} ✓", "callback_data": f"b:{i}"}] for i in range(12)]
    keyboard = {"inline_keyboard": rows}
    params = {"chat_id": 42, "text": "<b>n.º 1</b> &amp; ç", "parse_mode": "HTML"}
    _, first = await api.handle(api.token, "sendMessage", params | {"reply_markup": keyboard})
    _, second = await api.handle(api.token, "sendMessage", params)
    _, action = await api.handle(api.token, "sendChatAction", {"chat_id": 42})
    for body in (first, second, action):
        assert body == json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    assert json.loads(action) == {"ok": True, "result": True}
    # Every message shows the same chat and the same bot.
    wires = [json.loads(body)["result"] for body in (first, second)]
    chat = {"id": 42, "type": "private", "first_name": "Ana"}
    assert wires[0]["chat"] == wires[1]["chat"] == chat
    assert (
        wires[0]["from"]
        == wires[1]["from"]
        == {
            "id": api.bot_id,
            "is_bot": True,
            "first_name": "Lacre",
            "username": api.username,
        }
    )
    assert wires[0]["text"] == "n.º 1 & ç" and wires[0]["reply_markup"] == keyboard


class _Recording(InProcessRequest):
    """Keeps what python-telegram-bot handed over, to decode it the way a server would."""

    def __init__(self, api: FakeBotApi) -> None:
        super().__init__(api)
        self.sent: list[RequestData | None] = []

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        self.sent.append(request_data)
        return await super().do_request(url, method, request_data)


async def test_the_in_process_transport_decodes_what_a_server_would() -> None:
    api = FakeBotApi()
    api.send_text(FakeUser(42), "/start")
    request = _Recording(api)
    bot = Bot(api.token, base_url="http://sandbox.invalid/bot", request=request)
    async with bot:
        keyboard = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("Abrir ✓", callback_data="env:1")],
                [InlineKeyboardButton("Site", url="https://example.com/a?b=1")],
            ]
        )
        message = await bot.send_message(
            42,
            "<b>Olá</b>",
            parse_mode="HTML",
            reply_markup=keyboard,
            disable_notification=True,
            protect_content=False,
        )
        await bot.edit_message_text("<i>Tchau</i>", 42, message.message_id, parse_mode="HTML")
    assert message.text == "Olá" and message.reply_markup == keyboard
    assert api.last_bot_message(42).text == "Tchau"
    recorded = [params for name, params in api.calls if name in ("sendmessage", "editmessagetext")]
    data = [d for d in request.sent if d is not None and "text" in d.parameters]
    assert recorded == [decode_params(dict(d.json_parameters)) for d in data]
    assert recorded[0]["chat_id"] == 42 and recorded[0]["disable_notification"] == "true"
    status, body = await request.do_request(f"http://x/bot{api.token}/getMe?a=1", "GET")
    assert status == 200 and json.loads(body)["result"]["username"] == api.username
    assert (await request.do_request("http://x/nothing", "POST"))[0] == 404
