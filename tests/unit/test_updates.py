"""`bot.telegram.updates`: a tap on the bot's own buttons is parsed without the message's
contents; every other update, and taps on other buttons, reach python-telegram-bot whole."""

from __future__ import annotations

import copy
import json
from typing import Any

from telegram import Message, Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram.constants import ZERO_DATE
from telegram.ext import ExtBot
from telegram.request import BaseRequest, RequestData

from bot.telegram.updates import SlimUpdates, slim
from tests.support.telegram_wire import CHAT, USER, tap

BOT = ExtBot("123:abc")


def test_a_tap_on_the_bots_own_button_keeps_only_what_an_edit_needs() -> None:
    for data in ("env:7", "ls:pen:2", "ok:abc", "find", "pl", "lang:es", "hs:1"):
        update = slim(tap(data))
        assert update["callback_query"]["message"] == {
            "message_id": 41,
            "chat": CHAT,
            "date": 1_790_000_000,
        }, data
        assert update["callback_query"]["data"] == data
        assert update["callback_query"]["from"] == USER
        parsed = Update.de_json(update, BOT)
        assert parsed.callback_query is not None
        message = parsed.callback_query.message
        assert isinstance(message, Message)
        assert (message.chat_id, message.message_id, message.chat.type) == (5, 41, "private")
        assert message.reply_markup is None and message.text is None


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


def test_a_message_the_bot_can_no_longer_reach_keeps_its_zero_date() -> None:
    """Telegram sends `date` 0 for a message too old to reach; slimmed, it parses the same."""
    whole = Update.de_json(tap("env:7", date=0), BOT)
    slimmed = Update.de_json(slim(tap("env:7", date=0)), BOT)
    assert whole.callback_query is not None and slimmed.callback_query is not None
    assert whole.callback_query.message is not None and slimmed.callback_query.message is not None
    assert slimmed.callback_query.message.date == whole.callback_query.message.date == ZERO_DATE


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
    assert result[0]["callback_query"]["message"] == {
        "message_id": 41,
        "chat": CHAT,
        "date": 1_790_000_000,
    }
    assert result[1] == other
    # Error bodies and other answers are decoded as python-telegram-bot would.
    assert request.parse_json_payload(b'{"ok": true, "result": true}') == {
        "ok": True,
        "result": True,
    }
