"""The sandbox Bot API speaks Telegram's wire format: JSON and form bodies, its error bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.sandbox.bot_api import BotApiServer, FakeBotApi, FakeUser


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
