"""The demo page: a Telegram-like chat with the bot beside the sandbox's controls, and its JSON API.

Routes (127.0.0.1 only; any other Host header is refused, which also stops DNS rebinding):
    GET  /                 the page (static/index.html, app.js, app.css: no external assets)
    GET  /api/state        everything the page shows; polled by the page
    POST /api/send         {"text": "/envelopes"}: Ana writes to the bot
    POST /api/tap          {"message_id": 7, "data": "env:3:seal"}: Ana taps a button
    POST /api/sign         {"ref": "ENV-2390", "email": "..."}: the platform reports a signature
    POST /api/fail-next    {}: the next paid message (SMS or WhatsApp) fails at the carrier
    POST /api/clock        {"seconds": 3600}: simulated time moves forward
    GET  /pagamento        stands in for the external payment page of "Adquirir" links
POSTs take JSON only (a form on another site cannot send it without a CORS preflight).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.telegram import render
from bot.telegram.handlers import plain
from core.errors import DomainError

STATIC = Path(__file__).parent / "static"
MAX_BODY = 16 * 1024
MAX_TEXT = 4096
ALLOWED_HOSTS = ("127.0.0.1", "localhost")
# Scripts and styles only from this page's own files: even markup that slipped through the
# sanitiser could not run a script or load anything from elsewhere.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Controls(Protocol):
    """What the page can see and do in the sandbox (implemented by `demo.Sandbox`)."""

    async def snapshot(self) -> dict[str, Any]: ...

    def send(self, text: str) -> object: ...

    def tap(self, message_id: int, data: str) -> str: ...

    def sign(self, ref: str, email: str) -> None: ...

    def fail_next_delivery(self) -> None: ...

    def advance(self, delta: timedelta) -> datetime: ...


# -- Telegram HTML, made safe for the page -------------------------------------------------------
_SIMPLE = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
# Their text is not shown either: Telegram would have refused them, and they are not text.
_DROP_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template"})


class _Sanitiser(HTMLParser):
    """Keeps Telegram's tag set with safe attributes only; everything else becomes text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, str]] = []  # (tag as written, tag emitted or "")
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.skipping += 1
            return
        if self.skipping:
            return
        values = {k: v or "" for k, v in attrs}
        emitted = ""
        if tag in _SIMPLE:
            emitted = _SIMPLE[tag]
            extra = ""
            language = values.get("class", "")
            if emitted == "code" and language.startswith("language-") and language[9:].isalnum():
                extra = f' class="{html.escape(language)}"'
            self.out.append(f"<{emitted}{extra}>")
        elif tag == "a":
            href = values.get("href", "")
            if urlsplit(href).scheme in ("http", "https"):
                emitted = "a"
                self.out.append(
                    f'<a href="{html.escape(href, quote=True)}" target="_blank" '
                    'rel="noopener noreferrer">'
                )
        elif tag == "tg-spoiler" or (tag == "span" and values.get("class") == "tg-spoiler"):
            emitted = "span"
            self.out.append('<span class="tg-spoiler">')
        self.stack.append((tag, emitted))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and the like are not Telegram HTML: nothing to open or close.
        return

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                # Close what was opened inside it too, so the output stays balanced.
                while len(self.stack) > i:
                    _written, emitted = self.stack.pop()
                    if emitted:
                        self.out.append(f"</{emitted}>")
                return

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.stack:
            _written, emitted = self.stack.pop()
            if emitted:
                self.out.append(f"</{emitted}>")
        return "".join(self.out)


def sanitize_html(telegram_html: str) -> str:
    """Telegram's HTML subset as safe HTML for the page: only b/i/u/s/code/pre/blockquote,
    spoilers and http(s) links (opened in a new tab); every text is escaped again."""
    parser = _Sanitiser()
    parser.feed(telegram_html)
    return parser.result()


# -- the app --------------------------------------------------------------------------------------
class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _v in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class BadInput(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise BadInput("send JSON (Content-Type: application/json)", 415)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadInput("request too large", 413)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadInput("expected a JSON object")
    return data


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{name} is required")
    if len(value) > limit:
        raise BadInput(f"{name} is longer than {limit} characters")
    return value.strip()


Handler = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]


def _post(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request, await _json_body(request)))
        except BadInput as exc:
            return _error(str(exc), exc.status)
        except LookupError as exc:
            return _error(str(exc).strip("'\""), 404)
        except DomainError as exc:
            # The bot's own pt-BR wording of the refusal, as plain text.
            return _error(plain(render.refusal(exc)), 409)

    return endpoint


def build_web_app(controls: Controls) -> Starlette:
    """The page and its JSON API over `controls`."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def state(request: Request) -> Response:
        return JSONResponse(await controls.snapshot())

    async def send(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        controls.send(_text(data, "text", MAX_TEXT))
        return {"ok": True}

    async def tap(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        message_id = data.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise BadInput("message_id must be a number")
        return {"query_id": controls.tap(message_id, _text(data, "data", 64))}

    async def sign(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        ref, email = _text(data, "ref", 64), _text(data, "email", 320)
        await asyncio.to_thread(controls.sign, ref, email)
        return {"ok": True}

    async def fail_next(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        controls.fail_next_delivery()
        return {"fail_next": True}

    async def clock(request: Request, data: dict[str, Any]) -> dict[str, Any]:
        seconds = data.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise BadInput("seconds must be a whole number")
        try:
            moment = controls.advance(timedelta(seconds=seconds))
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return {"now": moment.isoformat()}

    async def payment(request: Request) -> Response:
        item = html.escape(request.query_params.get("item", ""))
        return HTMLResponse(
            "<!doctype html><html lang='pt-BR'><head><meta charset='utf-8'>"
            "<title>Pagamento (simulado)</title>"
            "<link rel='stylesheet' href='/static/app.css'></head>"
            "<body class='payment'><main><h1>Página de pagamento</h1>"
            f"<p>Item: <code>{item}</code></p>"
            "<p>Na produção, “Adquirir” abre a página de pagamento externa; os créditos chegam "
            "ao saldo quando o pagamento é confirmado. Nesta demonstração nada é cobrado.</p>"
            "</main></body></html>"
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/send", _post(send), methods=["POST"]),
            Route("/api/tap", _post(tap), methods=["POST"]),
            Route("/api/sign", _post(sign), methods=["POST"]),
            Route("/api/fail-next", _post(fail_next), methods=["POST"]),
            Route("/api/clock", _post(clock), methods=["POST"]),
            Route("/pagamento", payment),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(ALLOWED_HOSTS)),
            Middleware(_SecurityHeaders),
        ],
    )
