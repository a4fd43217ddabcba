"""`POST /telegram/webhook`: Telegram's updates in webhook mode, secret-token header checked."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.telegram.updates import slim

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
MAX_UPDATE_BYTES = 1024 * 1024


def telegram_webhook_route(
    application: Application[Any, Any, Any, Any, Any, Any], secret: str
) -> Route:
    """A route that queues each verified update for the running application."""
    if not secret:
        raise ValueError("webhook mode needs TELEGRAM_WEBHOOK_SECRET")

    async def webhook(request: Request) -> Response:
        """Refuse anything without our secret; queue the update; answer at once."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("telegram webhook refused: bad or missing secret token")
            return PlainTextResponse("forbidden", status_code=403)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return PlainTextResponse("too large", status_code=413)
        try:
            data = json.loads(body)
            update = Update.de_json(slim(data), application.bot)
        except (ValueError, TypeError, KeyError):
            return PlainTextResponse("not an update", status_code=400)
        await application.update_queue.put(update)
        return Response(status_code=200)

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])
