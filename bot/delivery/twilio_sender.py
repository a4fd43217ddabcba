"""SMS and WhatsApp through the real twilio client: one create per send, lookups to reconcile.

A message create has no idempotency key, so it is retried (with stamina) only when Twilio
surely never processed it: HTTP 429, or a connection that was refused. A timeout, a dropped
connection or a 5xx after the request left is UNKNOWN: the worker reconciles it by a lookup
or the status callback, and never sends it again by itself.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import logging
from datetime import datetime
from typing import Any

import aiohttp
import stamina
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.delivery.ports import Job, ProviderMessage
from bot.phones import mask_phone
from bot.settings import Settings
from core.delivery import REASON_PROVIDER_UNAVAILABLE, Attempt, DeliveryPolicy, Verdict
from core.delivery import twilio_create_verdict as verdict_of
from core.notifications import Channel, Notification

log = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/twilio/status"

# The twilio client logs every request at INFO with its query string (phone numbers in
# lookups): its own logger is kept at WARNING, whatever the application's level.
_client_log = logging.getLogger("bot.delivery.twilio_http")
_client_log.setLevel(logging.WARNING)


def _refused(exc: BaseException) -> bool:
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return False
    os_error = exc.os_error
    return isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED


def never_processed(exc: Exception) -> bool:
    """The only failures of a create that are safe to retry: Twilio never saw or took it."""
    if isinstance(exc, TwilioRestException):
        return verdict_of(exc.status, exc.code) is Verdict.RETRY
    return _refused(exc)


def content_variables(job: Job) -> dict[str, str]:
    """The approved template's variables: {{1}} signer, {{2}} title, {{3}} account, {{4}} link."""
    ctx = job.context
    return {
        "1": ctx.signer_name,
        "2": ctx.envelope_title,
        "3": ctx.account_name,
        "4": job.link,
    }


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Twilio's aiohttp client, with basic auth sent as a header (aiohttp deprecates `auth=`)."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the overridden signature
        allow_redirects: bool = False,
    ) -> Any:
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        return await super().request(
            method, url, params, data, headers, None, timeout, allow_redirects
        )


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


class TwilioSender:
    """The MessageSending port over Twilio's REST API (or a stand-in at `api_base_url`)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        status_callback_url: str,
        sms_from: str = "",
        messaging_service_sid: str = "",
        whatsapp_from: str = "",
        whatsapp_content_sid: str = "",
        api_base_url: str = "https://api.twilio.com",
        timeout: float = 15.0,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.status_callback_url = status_callback_url
        self.sms_from = sms_from
        self.messaging_service_sid = messaging_service_sid
        self.whatsapp_from = _whatsapp(whatsapp_from) if whatsapp_from else ""
        self.whatsapp_content_sid = whatsapp_content_sid
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or DeliveryPolicy()
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Any = None

    @classmethod
    def from_settings(
        cls, settings: Settings, policy: DeliveryPolicy | None = None
    ) -> TwilioSender:
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            status_callback_url=settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH,
            sms_from=settings.twilio_sms_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            whatsapp_from=settings.twilio_whatsapp_from,
            whatsapp_content_sid=settings.twilio_whatsapp_content_sid,
            api_base_url=settings.twilio_api_base_url,
            timeout=settings.twilio_timeout_seconds,
            policy=policy,
        )

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels this configuration can send on (none without credentials)."""
        out: list[Channel] = []
        if not self.account_sid or not self._auth_token:
            return ()
        if self.sms_from or self.messaging_service_sid:
            out.append(Channel.SMS)
        if self.whatsapp_from and self.whatsapp_content_sid:
            out.append(Channel.WHATSAPP)
        return tuple(out)

    def _twilio(self) -> Any:
        # Built on first use, inside the running loop that its aiohttp session belongs to.
        if self._client is None:
            # No `max_retries`: its retrying session would repeat a POST after a 5xx, and a
            # create that reached Twilio must never be repeated.
            self._http = _HttpClient(logger=_client_log)
            client = Client(self.account_sid, self._auth_token, http_client=self._http)
            client.api.base_url = self.api_base_url
            self._client = client
        return self._client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http, self._client = None, None

    def create_params(self, job: Job) -> dict[str, Any]:
        """The `messages.create` arguments: SMS with a body, WhatsApp with the template only."""
        n = job.notification
        params: dict[str, Any] = {"to": n.destination, "status_callback": self.status_callback_url}
        if n.channel is Channel.WHATSAPP:
            params["from_"] = self.whatsapp_from
            params["content_sid"] = self.whatsapp_content_sid
            params["content_variables"] = json.dumps(content_variables(job), ensure_ascii=False)
        elif self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
            params["body"] = n.body
        else:
            params["from_"] = self.sms_from
            params["body"] = n.body
        return params

    async def send(self, job: Job) -> Attempt:
        n = job.notification
        to = mask_phone(n.destination.removeprefix("whatsapp:"))
        messages = self._twilio().messages
        params = self.create_params(job)
        try:
            async for attempt in stamina.retry_context(
                on=never_processed,
                attempts=self.policy.twilio_create_attempts,
                timeout=self.policy.twilio_retry_timeout,
                wait_initial=0.5,
                wait_max=5.0,
            ):
                with attempt:
                    async with asyncio.timeout(self.timeout):
                        message = await messages.create_async(**params)
        except TwilioRestException as exc:
            verdict = verdict_of(exc.status, exc.code)
            log.warning(
                "%s %s to %s: Twilio answered %s (code %s): %s",
                n.channel,
                n.id,
                to,
                exc.status,
                exc.code,
                verdict,
            )
            code = str(exc.code) if exc.code else None
            reason = REASON_PROVIDER_UNAVAILABLE if verdict is Verdict.RETRY else ""
            return Attempt(verdict, error_code=code, reason=reason)
        except aiohttp.ClientConnectorError as exc:
            # No connection was made, so no request left: nothing can have been sent.
            log.warning("%s %s to %s: Twilio unreachable (%s)", n.channel, n.id, to, exc.os_error)
            return Attempt(Verdict.RETRY, reason=REASON_PROVIDER_UNAVAILABLE)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning(
                "%s %s to %s: no answer after the request left (%s); unknown until reconciled",
                n.channel,
                n.id,
                to,
                type(exc).__name__,
            )
            return Attempt(Verdict.UNKNOWN)
        log.info("%s %s to %s: Twilio took it as %s", n.channel, n.id, to, message.sid)
        code = message.error_code
        return Attempt(
            Verdict.ACCEPTED,
            provider_id=message.sid,
            provider_status=message.status or "queued",
            error_code=str(code) if code else None,
        )

    async def lookup(self, notification: Notification, since: datetime) -> list[ProviderMessage]:
        """By SID when known; otherwise this row's destination, sender and text since `since`."""
        messages = self._twilio().messages
        async with asyncio.timeout(self.timeout):
            if notification.provider_id:
                try:
                    found = [await messages(notification.provider_id).fetch_async()]
                except TwilioRestException as exc:
                    if exc.status == 404:
                        return []
                    raise
            else:
                found = await messages.list_async(
                    to=notification.destination,
                    date_sent_after=since.date().isoformat(),
                    limit=50,
                )
        return [
            ProviderMessage(
                sid=m.sid,
                status=m.status or "",
                error_code=str(m.error_code) if m.error_code else None,
                to=m.to or "",
                created_at=m.date_created,
            )
            for m in found
            if notification.provider_id or self._ours(notification, m, since)
        ]

    def _ours(self, notification: Notification, message: Any, since: datetime) -> bool:
        if message.to != notification.destination:
            return False
        if message.direction and not str(message.direction).startswith("outbound"):
            return False
        if message.date_created is not None and message.date_created < since:
            return False
        if notification.channel is Channel.WHATSAPP:
            return bool(message.from_ == self.whatsapp_from)
        if self.messaging_service_sid:
            if message.messaging_service_sid != self.messaging_service_sid:
                return False
        elif message.from_ != self.sms_from:
            return False
        return not message.body or message.body == notification.body
