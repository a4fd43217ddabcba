"""Telegram's JSON for a button tap, as the Bot API sends it."""

from __future__ import annotations

from typing import Any

USER = {"id": 5, "is_bot": False, "first_name": "Ana", "language_code": "pt-br"}
CHAT = {"id": 5, "type": "private", "first_name": "Ana"}
KEYBOARD = {"inline_keyboard": [[{"text": "Contrato", "callback_data": "env:7"}]]}


def tap(data: Any, **message: Any) -> dict[str, Any]:
    """A tap with callback `data` under a bot message with text, entities and a keyboard
    (`message` replaces its fields)."""
    tapped = {
        "message_id": 41,
        "from": {"id": 1, "is_bot": True, "first_name": "Lacre"},
        "chat": CHAT,
        "date": 1_790_000_000,
        "edit_date": 1_790_000_100,
        "text": "Envelopes\n1. Contrato",
        "entities": [{"type": "bold", "offset": 0, "length": 9}],
        "reply_markup": KEYBOARD,
    } | message
    query = {"id": "9", "from": USER, "message": tapped, "chat_instance": "1", "data": data}
    return {"update_id": 3, "callback_query": query}
