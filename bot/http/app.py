"""The HTTP app: Twilio status callbacks (signature checked) and health; webhooks plug in here.

Routes:
    POST /twilio/status   Twilio status callbacks: 403 without a valid X-Twilio-Signature
    GET  /healthz         200 when the database answers, 503 otherwise
Later routes (added by their features through `extra_routes`):
    POST /telegram/webhook, POST /payments/webhook, POST /platform/events
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from twilio.request_validator import RequestValidator

from bot.delivery.twilio_sender import STATUS_CALLBACK_PATH
from core.clock import Clock
from core.notifications import DeliveryStatus
from core.services import Lacre
from storage.outbox import SqlOutbox

log = logging.getLogger(__name__)

# A status callback is a few hundred bytes; anything far larger is not Twilio.
MAX_CALLBACK_BYTES = 64 * 1024


@dataclass(frozen=True)
class TwilioStatusConfig:
    """What the status-callback route needs; the URL is the public one Twilio signed."""

    auth_token: str
    public_base_url: str

    @property
    def callback_url(self) -> str:
        return self.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH


def build_http_app(
    *,
    outbox: SqlOutbox,
    lacre: Lacre,
    clock: Clock,
    twilio: TwilioStatusConfig,
    health: Callable[[], bool] | None = None,
    on_change: Callable[[], None] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette app; `on_change` is called (in the app's loop) after a status moved,
    e.g. the outbox worker's `wake` so that owner notices go out at once."""
    validator = RequestValidator(twilio.auth_token)

    async def twilio_status(request: Request) -> Response:
        """Apply one status callback: checked, deduplicated, monotonic, refunded at most once."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            log.warning("twilio status callback refused: no signature")
            return PlainTextResponse("forbidden", status_code=403)
        if int(request.headers.get("content-length") or 0) > MAX_CALLBACK_BYTES:
            return PlainTextResponse("too large", status_code=413)
        form = await request.form()
        params = {key: str(value) for key, value in form.items()}
        # The form itself is validated (every value of a repeated field counts).
        if not validator.validate(twilio.callback_url, form, signature):
            log.warning("twilio status callback refused: bad signature")
            return PlainTextResponse("forbidden", status_code=403)
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        if not sid or not status:
            return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
        result = await asyncio.to_thread(
            outbox.apply_callback,
            sid,
            status,
            params.get("ErrorCode") or None,
            params.get("To") or None,
            clock.now(),
        )
        applied = result.applied
        if result.duplicate:
            log.info("twilio status %s for %s: repeat, ignored", status, sid)
        elif applied is None:
            log.info("twilio status %s for %s: message not known yet, kept", status, sid)
        elif applied.moved:
            n = applied.notification
            log.info("twilio status %s for %s: notification %s now %s", status, sid, n.id, n.status)
            if n.status is DeliveryStatus.FAILED and applied.change.refund and n.cost > 0:
                await asyncio.to_thread(lacre.refund, n.id)
            if on_change is not None:
                on_change()
        return Response(status_code=204)

    async def healthz(_request: Request) -> Response:
        ok = True if health is None else await asyncio.to_thread(health)
        return JSONResponse(
            {"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503
        )

    routes: list[BaseRoute] = [
        Route(STATUS_CALLBACK_PATH, twilio_status, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes)
