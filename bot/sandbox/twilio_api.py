"""A fake Twilio REST API on 127.0.0.1 speaking Twilio's wire format, for tests and the demo.

`FakeTwilio` keeps the messages and every request it got, and answers like Twilio does:
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form body; 201 with the message JSON,
`status` "queued", or "accepted" through a messaging service; errors as
`{"code": 21211, "message": ..., "more_info": ..., "status": 400}`),
`GET .../Messages/{Sid}.json` and `GET .../Messages.json?To=...&DateSent>=...` (a page).
It checks HTTP basic auth (AccountSid:AuthToken) like Twilio.

Its Python API injects trouble: the next create answers an error (429 ...), answers 500 or
hangs after the message was created, numbers that are refused; and it moves a message's
status and fires the status callback signed with the auth token (Twilio's
`X-Twilio-Signature`, computed with `RequestValidator`'s algorithm). `TwilioApiServer`
serves it with uvicorn in the running event loop and can refuse connections on its port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from core.notifications import sms_segments

# Sandbox credentials: the fake accepts only these, and they guard nothing real.
DEFAULT_ACCOUNT_SID = "AC" + "0" * 30 + "1a"
DEFAULT_AUTH_TOKEN = "sandbox-auth-token-not-secret"  # noqa: S105
API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_BASE = f"/{API_VERSION}/Accounts/{{account}}"


@dataclass
class FakeMessage:
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None
    status: str
    date_created: datetime
    date_sent: datetime | None
    date_updated: datetime
    num_segments: int = 1
    error_code: int | None = None
    error_message: str | None = None
    direction: str = "outbound-api"

    def wire(self, account_sid: str) -> dict[str, Any]:
        uri = f"{_BASE.format(account=account_sid)}/Messages/{self.sid}.json"
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_sent) if self.date_sent else None,
            "date_updated": format_datetime(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    at: float  # time.perf_counter() when it arrived
    status: int


@dataclass
class _Trouble:
    kind: str  # "error" | "500-after-create" | "hang"
    times: int
    status: int = 0
    code: int = 0
    message: str = ""


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "code": self.code,
                "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                "status": self.status,
            },
            status_code=self.status,
        )


def _parse_day(value: str) -> datetime | date:
    value = value.strip()
    if "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return date.fromisoformat(value)


def _at_least(moment: datetime, bound: datetime | date) -> bool:
    return moment >= bound if isinstance(bound, datetime) else moment.date() >= bound


def _at_most(moment: datetime, bound: datetime | date) -> bool:
    return moment <= bound if isinstance(bound, datetime) else moment.date() <= bound


@dataclass
class FakeTwilio:
    """The state of the fake API and its Python controls."""

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Statuses every accepted message moves through by itself, with its callbacks (the demo).
    auto_progress: tuple[str, ...] = ()
    auto_delay: float = 0.2
    latency: float = 0.0  # seconds every create takes before it is answered
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    callbacks_fired: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    refused_numbers: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    failing_numbers: dict[str, tuple[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._troubles: deque[_Trouble] = deque()
        self._release = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counter = itertools.count(1)
        self._doomed_next: deque[tuple[str, int]] = deque()
        self._doomed: dict[str, tuple[str, int]] = {}

    # -- controls: trouble -----------------------------------------------------------------
    def fail_next_create(
        self, status: int = 429, code: int = 20429, message: str = "", *, times: int = 1
    ) -> None:
        """The next `times` creates answer this error and create nothing."""
        text = message or {429: "Too Many Requests"}.get(status, "Injected failure")
        self._troubles.append(_Trouble("error", times, status, code, text))

    def answer_500_after_create(self, *, times: int = 1) -> None:
        """The next `times` creates make the message, then answer 500 (as an overload may)."""
        self._troubles.append(_Trouble("500-after-create", times))

    def hang_after_create(self, *, times: int = 1) -> None:
        """The next `times` creates make the message, then answer only after `release()`."""
        self._release.clear()
        self._troubles.append(_Trouble("hang", times))

    def release(self) -> None:
        self._release.set()

    def refuse_number(
        self, to: str, code: int = 21614, message: str = "", status: int = 400
    ) -> None:
        """Creates to `to` answer this error (21211 invalid, 21614 landline, 21610 opted out)."""
        default = {
            21211: f"The 'To' number {to} is not a valid phone number.",
            21614: f"'To' number {to} is not a valid mobile number",
            21610: "Attempt to send to unsubscribed recipient",
            21408: "Permission to send an SMS has not been enabled for the region indicated by "
            "the 'To' number",
        }.get(code, "Injected refusal")
        self.refused_numbers[to] = (status, code, message or default)

    def fail_number(self, to: str, status: str = "undelivered", code: int = 30003) -> None:
        """Messages to `to` are accepted, then end in this status when they progress."""
        self.failing_numbers[to] = (status, code)

    def fail_next_delivery(self, status: str = "failed", code: int = 30005) -> None:
        """The next accepted message, whatever its number, ends in this status when it
        progresses (the demo's "make the next delivery fail"); later ones are unaffected."""
        self._doomed_next.append((status, code))

    @property
    def next_delivery_fails(self) -> bool:
        return bool(self._doomed_next)

    def close(self) -> None:
        self._release.set()
        for task in self._tasks:
            task.cancel()

    # -- inspection ------------------------------------------------------------------------
    def creates(self) -> list[RecordedRequest]:
        """Every create request that reached the API, in order, whatever it was answered."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")
        ]

    def sent_to(self, to: str) -> list[FakeMessage]:
        return [m for m in self.messages.values() if m.to == to]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.01)

    # -- status changes and signed callbacks -----------------------------------------------
    def sign(self, url: str, params: dict[str, str]) -> str:
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    def callback_params(
        self, sid: str, status: str, error_code: int | str | None = None
    ) -> dict[str, str]:
        message = self.messages[sid]
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code:
            params["ErrorCode"] = str(error_code)
        return params

    async def fire_callback(
        self,
        sid: str,
        status: str,
        error_code: int | str | None = None,
        *,
        url: str | None = None,
        signature: str | None = None,
        signed_url: str | None = None,
    ) -> int:
        """POST a status callback as Twilio would; returns the HTTP status it got.

        `signature` replaces the real one; `signed_url` signs another URL than the one
        called (what a proxy in front of the app would break).
        """
        target = url or self.messages[sid].status_callback
        if not target:
            raise ValueError(f"message {sid} has no StatusCallback")
        params = self.callback_params(sid, status, error_code)
        headers = {"User-Agent": "TwilioProxy/1.1"}
        sig = signature if signature is not None else self.sign(signed_url or target, params)
        if sig:
            headers["X-Twilio-Signature"] = sig
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            answer = await client.post(target, data=params, headers=headers)
        self.callbacks_fired.append((target, params, answer.status_code))
        return answer.status_code

    async def progress(
        self, sid: str, status: str, error_code: int | None = None, *, callback: bool = True
    ) -> int | None:
        """Move a message to `status` (as the carrier would) and fire its callback."""
        message = self.messages[sid]
        now = self.clock()
        message.status, message.date_updated = status, now
        if status in ("sent", "delivered", "undelivered", "read") and message.date_sent is None:
            message.date_sent = now
        if error_code:
            message.error_code = error_code
            message.error_message = f"Error {error_code}"
        if callback and message.status_callback:
            return await self.fire_callback(sid, status, error_code)
        return None

    async def _auto(self, sid: str) -> None:
        message = self.messages[sid]
        plan: Iterable[tuple[str, int | None]] = [(s, None) for s in self.auto_progress]
        bare = message.to.removeprefix("whatsapp:")
        if sid in self._doomed:
            end, failure = self._doomed.pop(sid)
            # "failed": Twilio could not send it at all; "undelivered": the carrier gave up.
            plan = [(end, failure)] if end == "failed" else [("sent", None), (end, failure)]
        elif message.to in self.failing_numbers or bare in self.failing_numbers:
            end, failure = self.failing_numbers.get(message.to) or self.failing_numbers[bare]
            plan = [("sent", None), (end, failure)]
        elif message.to.startswith("whatsapp:") and not message.content_sid:
            plan = [("failed", 63016)]  # free-form WhatsApp outside the 24-hour window
        for status, error in plan:
            await asyncio.sleep(self.auto_delay)
            with contextlib.suppress(httpx.HTTPError):
                await self.progress(sid, status, error)

    # -- the wire --------------------------------------------------------------------------
    def _authorised(self, request: Request, account: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token and account == user

    async def handle(self, request: Request) -> Response:
        account = request.path_params["account"]
        sid = request.path_params.get("sid")
        if request.method == "POST":
            params = {k: str(v) for k, v in (await request.form()).items()}
        else:
            params = dict(request.query_params)
        arrived = time.perf_counter()
        try:
            if not self._authorised(request, account):
                raise TwilioError(401, 20003, "Authenticate")
            if request.method == "POST":
                response = await self._create(params)
            elif sid is not None:
                response = self._fetch(sid)
            else:
                response = self._list(params, request.url.path)
        except TwilioError as exc:
            response = exc.response()
        self.requests.append(
            RecordedRequest(request.method, request.url.path, params, arrived, response.status_code)
        )
        return response

    async def _create(self, params: dict[str, str]) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        trouble = self._troubles[0] if self._troubles else None
        if trouble is not None:
            trouble.times -= 1
            if trouble.times <= 0:
                self._troubles.popleft()
            if trouble.kind == "error":
                raise TwilioError(trouble.status, trouble.code, trouble.message)
        to = params.get("To", "")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not params.get("From") and not params.get("MessagingServiceSid"):
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not params.get("Body") and not params.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        bare = to.removeprefix("whatsapp:")
        if not _E164.match(bare):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sender = params.get("From")
        if sender and to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
            raise TwilioError(400, 21910, "Invalid 'From' and 'To' pair.")
        refused = self.refused_numbers.get(to) or self.refused_numbers.get(bare)
        if refused is not None:
            raise TwilioError(*refused)
        now = self.clock()
        body = params.get("Body", "")
        message = FakeMessage(
            sid=f"SM{uuid.uuid4().hex}",
            to=to,
            from_=params.get("From"),
            messaging_service_sid=params.get("MessagingServiceSid"),
            body=body,
            content_sid=params.get("ContentSid"),
            content_variables=params.get("ContentVariables"),
            status_callback=params.get("StatusCallback"),
            status="queued" if params.get("From") else "accepted",
            date_created=now,
            date_sent=now,
            date_updated=now,
            num_segments=sms_segments(body).segments if body else 1,
        )
        if message.content_variables is not None:
            json.loads(message.content_variables)  # Twilio refuses what is not JSON
        self.messages[message.sid] = message
        if self._doomed_next:
            self._doomed[message.sid] = self._doomed_next.popleft()
        if (
            self.auto_progress
            or self.failing_numbers
            or message.sid in self._doomed
            or to.startswith("whatsapp:")
        ):
            task = asyncio.get_running_loop().create_task(self._auto(message.sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if trouble is not None and trouble.kind == "500-after-create":
            raise TwilioError(500, 20500, "Internal Server Error")
        if trouble is not None and trouble.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), 60)
        return JSONResponse(message.wire(self.account_sid), status_code=201)

    def _fetch(self, sid: str) -> Response:
        message = self.messages.get(sid)
        if message is None:
            path = f"{_BASE.format(account=self.account_sid)}/Messages/{sid}.json"
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")
        return JSONResponse(message.wire(self.account_sid))

    def _list(self, params: dict[str, str], path: str) -> Response:
        found = list(self.messages.values())
        if params.get("To"):
            found = [m for m in found if m.to == params["To"]]
        if params.get("From"):
            found = [m for m in found if m.from_ == params["From"]]
        for key, keep in (("DateSent>", _at_least), ("DateSent<", _at_most)):
            if params.get(key):
                bound = _parse_day(params[key])
                found = [m for m in found if m.date_sent is not None and keep(m.date_sent, bound)]
        if params.get("DateSent"):
            day = _parse_day(params["DateSent"])
            found = [
                m
                for m in found
                if m.date_sent is not None
                and _at_least(m.date_sent, day)
                and _at_most(m.date_sent, day)
            ]
        found.sort(key=lambda m: (m.date_created, m.sid), reverse=True)
        size = max(1, min(int(params.get("PageSize", "50")), 1000))
        page = max(0, int(params.get("Page", "0")))
        chunk = found[page * size : (page + 1) * size]

        def uri(number: int) -> str:
            return f"{path}?PageSize={size}&Page={number}"

        more = (page + 1) * size < len(found)
        return JSONResponse(
            {
                "messages": [m.wire(self.account_sid) for m in chunk],
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page else None,
                "start": page * size,
                "uri": uri(page),
            }
        )


def asgi_app(api: FakeTwilio) -> Starlette:
    base = _BASE.format(account="{account}")
    return Starlette(
        routes=[
            Route(f"{base}/Messages.json", api.handle, methods=["GET", "POST"]),
            Route(f"{base}/Messages/{{sid}}.json", api.handle, methods=["GET"]),
        ]
    )


class TwilioApiServer:
    """Serves a FakeTwilio over HTTP on 127.0.0.1 inside the running event loop."""

    def __init__(self, api: FakeTwilio, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api, self.host, self.port = api, host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """What TWILIO_API_BASE_URL (the client's `api.base_url`) should be."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._listen(self._bind())
        assert self._server is not None and self._task is not None
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
            await asyncio.sleep(0.005)

    def _bind(self) -> socket.socket:
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        return sock

    def _listen(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            asgi_app(self.api),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))

    async def refuse_connections(self) -> None:
        """Close the port: connecting now fails with ECONNREFUSED (the port is kept)."""
        await self._shutdown()

    def accept_connections(self) -> None:
        """Listen again on the same port at once (synchronous, for a retry hook)."""
        if self._server is None:
            self._listen(self._bind())

    async def _shutdown(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None

    async def stop(self) -> None:
        self.api.close()
        await self._shutdown()
