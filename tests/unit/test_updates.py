"""`bot.telegram.updates`: a tap on the bot's own buttons is parsed without the message it sits
under, keeping where it came from; every other update, and taps on other buttons, reach
python-telegram-bot whole. `origin` answers the chat and the message to edit for either."""

from __future__ import annotations

import copy
import json
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram.ext import ExtBot
from telegram.request import BaseRequest, RequestData

from bot.telegram.updates import TAPPED, Origin, SlimUpdates, origin, slim
from tests.support.telegram_wire import CHAT, USER, tap

BOT = ExtBot("123:abc")
KEPT = {"chat_id": 5, "chat_type": "private", "message_id": 41}


def test_a_tap_on_the_bots_own_button_keeps_only_where_it_came_from() -> None:
    for data in ("env:7", "ls:pen:2", "ok:abc", "find", "pl", "lang:es", "hs:1"):
        update = slim(tap(data))
        query = update["callback_query"]
        assert "message" not in query, data
        assert query[TAPPED] == KEPT, data
        assert (query["data"], query["from"], query["id"]) == (data, USER, "9")
        parsed = Update.de_json(update, BOT)
        assert parsed.callback_query is not None
        assert parsed.callback_query.message is None
        assert parsed.callback_query.data == data
        assert parsed.effective_user is not None and parsed.effective_user.id == 5
        assert origin(parsed) == Origin(5, "private", 41)


def test_origin_is_the_same_for_a_tap_slimmed_or_whole() -> None:
    """Whatever path an update took, the handlers see the same chat and message to edit."""
    for chat in (CHAT, {"id": -100, "type": "supergroup", "title": "Equipe"}):
        whole = Update.de_json(tap("mute:7", chat=chat), BOT)  # never slimmed
        slimmed = Update.de_json(slim(tap("env:7", chat=chat)), BOT)
        where = origin(slimmed)
        assert origin(whole) == where == Origin(chat["id"], chat["type"], 41)
        assert where is not None and where.private is (chat["type"] == "private")


def test_origin_of_other_updates() -> None:
    command = {
        "update_id": 4,
        "message": {"message_id": 1, "from": USER, "chat": CHAT, "date": 1, "text": "/saldo"},
    }
    # A command: the chat only (the user's own message is not the bot's to edit).
    assert origin(Update.de_json(command, BOT)) == Origin(5, "private", None)
    inline = tap("env:7")
    del inline["callback_query"]["message"]  # an inline-mode button: no chat at all
    assert origin(Update.de_json(slim(inline), BOT)) is None
    assert origin(Update.de_json({"update_id": 5}, BOT)) is None


def test_taps_on_other_buttons_and_other_updates_are_left_whole() -> None:
    # The scheduler's "Não lembrar mais" rewrites the reminder it sits under; "zzz" and
    # "envx:1" are no handler's prefix (the stale-button answer); data may be missing.
    for data in ("mute:7", "rem:on", "zzz", "envx:1", "", None, 7):
        update = tap(data)
        assert slim(copy.deepcopy(update)) == update, data
    message = {"update_id": 4, "message": {"message_id": 1, "chat": CHAT, "date": 1, "text": "oi"}}
    assert slim(copy.deepcopy(message)) == message
    no_message = tap("env:7")
    del no_message["callback_query"]["message"]  # an inline-mode button
    assert slim(copy.deepcopy(no_message)) == no_message
    for odd in ([], "x", None, {"update_id": 1, "callback_query": "x"}):
        assert slim(copy.deepcopy(odd)) == odd
    # A tapped message without a usable chat or id is not Telegram's shape: left for
    # python-telegram-bot to parse (or refuse) as it comes.
    for broken in (
        {"chat": None},
        {"chat": {"id": "5", "type": "private"}},
        {"chat": {"id": 5}},
        {"message_id": None},
    ):
        update = tap("env:7", **broken)
        assert slim(copy.deepcopy(update)) == update, broken


def test_a_message_the_bot_can_no_longer_reach_is_answered_anew_either_way() -> None:
    """Telegram sends `date` 0 for a message too old to reach: no message id to edit, whether
    the tap was slimmed or not, so the answer is sent as a new message."""
    slimmed = slim(tap("env:7", date=0))
    assert slimmed["callback_query"][TAPPED] == KEPT | {"message_id": None}
    assert origin(Update.de_json(slimmed, BOT)) == Origin(5, "private", None)
    assert origin(Update.de_json(tap("mute:7", date=0), BOT)) == Origin(5, "private", None)


class Recorded(BaseRequest):
    """An inner transport that answers a fixed body and records what it was asked."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()
        self.calls: list[tuple[Any, ...]] = []
        self.started = self.stopped = False

    @property
    def read_timeout(self) -> float | None:
        return 7.5

    async def initialize(self) -> None:
        self.started = True

    async def shutdown(self) -> None:
        self.stopped = True

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        self.calls.append((url, method, read_timeout, write_timeout, connect_timeout, pool_timeout))
        return 200, self.body


async def test_the_polling_transport_slims_each_update_and_passes_everything_else_on() -> None:
    own, other = tap("env:7"), tap("mute:7")
    inner = Recorded({"ok": True, "result": [own, other]})
    request = SlimUpdates(inner)
    assert request.read_timeout == 7.5
    await request.initialize()
    result = await request.post("https://api.invalid/bot1:x/getUpdates", read_timeout=3)
    await request.shutdown()
    assert inner.started and inner.stopped
    assert inner.calls == [
        (
            "https://api.invalid/bot1:x/getUpdates",
            "POST",
            3,
            DEFAULT_NONE,
            DEFAULT_NONE,
            DEFAULT_NONE,
        )
    ]
    assert isinstance(result, list)
    assert "message" not in result[0]["callback_query"]
    assert result[0]["callback_query"][TAPPED] == KEPT
    assert result[1] == other
    # Error bodies and other answers are decoded as python-telegram-bot would.
    assert request.parse_json_payload(b'{"ok": true, "result": true}') == {
        "ok": True,
        "result": True,
    }
