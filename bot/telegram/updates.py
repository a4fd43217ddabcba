"""What the bot keeps of an incoming update before python-telegram-bot builds objects of it.

A button tap arrives with the whole message the button was under: its text, entities and the
inline keyboard, one object per button once parsed (a list view has about twenty). The bot's
own buttons never read any of it: the callback data names what to do, every tap is checked
against the current state, and the answer is drawn anew and edited in by chat and message id.
So a tap on one of those buttons is parsed without the message: what the handlers need of it
(the chat's id and type, and the message's id while it can still be edited) travels in the
callback query's `lacre_tapped` field, which python-telegram-bot keeps in `api_kwargs` as it
does any field it does not know. Building even an empty `Message` (about a hundred attributes)
was most of what parsing a tap cost (decisions 0010, 0011). Taps on any other button (the
scheduler's `mute:`, which rewrites the reminder it sits under, and data no handler owns) and
every other kind of update are left whole.

`origin(update)` answers where any update came from, slimmed or whole: the bot's handlers read
the chat and the message to edit there, never from `effective_chat` or `callback_query.message`
(a slimmed tap has neither).

`SlimUpdates` slims for polling, as the getUpdates transport decodes Telegram's answer; the
webhook route calls `slim` on the update it receives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import JSONDict, ODVInput
from telegram.constants import ChatType
from telegram.request import BaseRequest, RequestData

from bot.telegram.callbacks import PREFIX_PATTERN

TAPPED = "lacre_tapped"
"""The callback query's field for what is kept of the tapped message (no Telegram field)."""
_OWN_BUTTON = re.compile(PREFIX_PATTERN)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an update came from: its chat and, for a tap, the bot's message to edit."""

    chat_id: int
    chat_type: str
    # The message under the tapped button; None for other updates and for a message Telegram
    # no longer lets the bot reach (`date` 0): that tap's answer is sent anew.
    message_id: int | None = None

    @property
    def private(self) -> bool:
        return self.chat_type == ChatType.PRIVATE


def slim(update: Any) -> Any:
    """`update` (decoded JSON, changed in place and returned) without what no handler reads."""
    if type(update) is not dict:
        return update
    query = update.get("callback_query")
    if type(query) is not dict:
        return update
    message, data = query.get("message"), query.get("data")
    if type(message) is not dict or type(data) is not str or not _OWN_BUTTON.match(data):
        return update
    chat, message_id = message.get("chat"), message.get("message_id")
    if (
        type(chat) is dict
        and type(chat.get("id")) is int
        and type(chat.get("type")) is str
        and type(message_id) is int
    ):
        del query["message"]
        query[TAPPED] = {
            "chat_id": chat["id"],
            "chat_type": chat["type"],
            "message_id": None if message.get("date") == 0 else message_id,
        }
    return update


def origin(update: Update) -> Origin | None:
    """The chat `update` came from (and the message a tap edits), slimmed or whole; None for
    an update with no chat (an inline-mode button, a poll answer)."""
    query = update.callback_query
    if query is not None:
        tapped = query.api_kwargs.get(TAPPED)
        if tapped is not None:
            return Origin(tapped["chat_id"], tapped["chat_type"], tapped["message_id"])
        message = query.message
        if message is None:
            return None
        editable = message.message_id if message.is_accessible else None
        return Origin(message.chat.id, message.chat.type, editable)
    chat = update.effective_chat
    return None if chat is None else Origin(chat.id, chat.type)


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
