"""`POST /telegram/webhook` on its own: what it queues for the application."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from telegram import Message
from telegram.ext import ApplicationBuilder

from bot.http.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH, telegram_webhook_route
from bot.telegram.updates import Origin, origin
from tests.support.telegram_wire import tap


async def test_a_tap_is_queued_as_polling_would_hand_it_over() -> None:
    """The bot's own buttons without the message under them; the scheduler's whole."""
    application = ApplicationBuilder().token("1:x").updater(None).build()
    app = Starlette(routes=[telegram_webhook_route(application, "s3cret")])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot.invalid") as client:
        for data in ("env:7", "mute:7"):
            answer = await client.post(
                WEBHOOK_PATH, json=tap(data), headers={SECRET_HEADER: "s3cret"}
            )
            assert answer.status_code == 200
    own, other = application.update_queue.get_nowait(), application.update_queue.get_nowait()
    assert own.callback_query is not None and other.callback_query is not None
    assert own.callback_query.data == "env:7" and own.callback_query.message is None
    assert origin(own) == Origin(5, "private", 41)
    assert isinstance(other.callback_query.message, Message)
    assert other.callback_query.message.reply_markup is not None
    assert other.callback_query.message.text == "Envelopes\n1. Contrato"
