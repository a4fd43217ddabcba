"""What the bot keeps of an incoming update before python-telegram-bot builds objects of it.

A button tap arrives with the whole message the button was under: its text, entities and the
inline keyboard, one object per button once parsed (a list view has about twenty). The bot's
own buttons never read any of it: the callback data names what to do, every tap is checked
against the current state, and the answer is drawn anew and edited in by chat and message id.
So for a tap on one of those buttons the message is cut down to `message_id`, `chat` and
`date` (a `date` of 0 still marks a message the bot can no longer reach) before parsing, about
half of what parsing a tap costs (decision 0010). Taps on any other button (the scheduler's
`mute:`, which rewrites the reminder it sits under, and data no handler owns) and every other
kind of update are left whole.

`SlimUpdates` does it for polling, as the getUpdates transport decodes Telegram's answer;
the webhook route calls `slim` on the update it receives.
"""

from __future__ import annotations

import re
from typing import Any

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import JSONDict, ODVInput
from telegram.request import BaseRequest, RequestData

from bot.telegram.callbacks import PREFIX_PATTERN

# What is left of the tapped message: enough to edit it and to know the chat it is in.
_TAPPED_KEEPS = ("message_id", "chat", "date")
_OWN_BUTTON = re.compile(PREFIX_PATTERN)


def slim(update: Any) -> Any:
    """`update` (decoded JSON, changed in place and returned) without what no handler reads."""
    if type(update) is not dict:
        return update
    query = update.get("callback_query")
    if type(query) is not dict:
        return update
    message, data = query.get("message"), query.get("data")
    if type(message) is dict and type(data) is str and _OWN_BUTTON.match(data):
        query["message"] = {key: message[key] for key in _TAPPED_KEEPS if key in message}
    return update


class SlimUpdates(BaseRequest):
    """The getUpdates transport: `inner`'s requests, each update slimmed as it is decoded.

    `parse_json_payload` is python-telegram-bot's documented place to change decoding; every
    other call goes to `inner` unchanged."""

    __slots__ = ("inner",)

    def __init__(self, inner: BaseRequest) -> None:
        self.inner = inner

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

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
        return await self.inner.do_request(
            url,
            method,
            request_data=request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )

    def parse_json_payload(self, payload: bytes) -> JSONDict:  # type: ignore[override]
        body = self.inner.parse_json_payload(payload)
        result = body.get("result") if type(body) is dict else None
        if type(result) is list:
            for update in result:
                slim(update)
        return body
