"""A fake Telegram Bot API server speaking the real wire format, with per-chat transcripts.

`FakeBotApi` holds the state and answers `POST /bot<token>/<method>` with Telegram's JSON
bodies (`{"ok": true, "result": ...}` or `{"ok": false, "error_code": 400, "description":
"Bad Request: ..."}`, `parameters.retry_after` on 429). Its Python API injects what a user does
(a text message, a button tap) and errors (the next call of a method answers 400/403/429).
`BotApiServer` serves it over HTTP with uvicorn on 127.0.0.1; `InProcessRequest` is a
python-telegram-bot transport that calls it without sockets (benchmarks, the demo page).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

# The sandbox token: the fake accepts only it, and it guards nothing real.
DEFAULT_TOKEN = "123456:SANDBOX-token-not-secret"  # noqa: S105
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
# Parameters that Telegram reads as JSON objects when they arrive in a form body.
_JSON_FIELDS = frozenset(
    {"reply_markup", "entities", "commands", "scope", "link_preview_options", "allowed_updates"}
)
# json.dumps(..., ensure_ascii=False), same bytes, without building an encoder per call or
# tracking containers for cycles: the answers are built from JSON-shaped values, never cyclic.
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_OK_TRUE = _encode({"ok": True, "result": True}).encode("utf-8")
_INT_FIELDS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "cache_time"})
_ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "blockquote",
        "tg-emoji",
    }
)


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


class _TelegramHtml(HTMLParser):
    """Telegram's HTML subset: known tags only, balanced, visible text collected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f'Unmatched end tag "{tag}"'
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse_with_html_parser(html_text: str) -> tuple[str, str | None]:
    """The visible text and first error as `html.parser` reads the text: the reference."""
    parser = _TelegramHtml()
    parser.feed(html_text)
    parser.close()
    if parser.error is None and parser.stack:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    return "".join(parser.text), parser.error


# The markup real messages use, in shapes html.parser reads as the same events (and plain
# enough that its later, HTML5-conforming versions should too). Each match is a text run (a
# "<" that opens nothing is text to html.parser too), then: a start tag with plain attributes,
# unquoted or quoted values, ended by ">" (group 2); an end tag (group 3); the end of the
# text; or any other "<" (group 4: comments, declarations, "/>", "</ b>", unterminated tags,
# odd names or attribute syntax), for which html.parser reads the whole text.
_SPACE = r"[ \t\n\r\f]"
_NAME = r"[a-zA-Z][-a-zA-Z0-9]*"
_VALUE = r"""(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+)"""
_ATTRIBUTE = rf"{_SPACE}+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:{_SPACE}*={_SPACE}*{_VALUE})?"
_HTML_TOKEN = re.compile(
    r"([^<]*(?:<(?![a-zA-Z/!?])[^<]*)*)"
    rf"(?:<({_NAME})(?:{_ATTRIBUTE})*{_SPACE}*>|</({_NAME}){_SPACE}*>|(<)|\Z)"
)
# The references html.escape writes, "&amp;" last so that it cannot make new ones, and an "&"
# that starts none of them.
_ESCAPES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#x27;", "'"),
    ("&#39;", "'"),
    ("&amp;", "&"),
)
_UNUSUAL_AMP = re.compile(r"&(?!lt;|gt;|quot;|#x27;|#39;|amp;)")


def _unescape_runs(runs: list[str]) -> str:
    """The text runs unescaped one by one, as html.parser does; by plain replacing when every
    "&" starts a reference html.escape writes, which skips html.unescape's Python call per
    reference."""
    joined = "".join(runs)
    if "&" not in joined:
        return joined
    # Searched with a "<" between runs, so that a reference cut by a tag ("&lt<b>;") is unusual.
    if _UNUSUAL_AMP.search("<".join(runs)):
        return "".join(unescape(run) for run in runs)
    for entity, char in _ESCAPES:
        if entity in joined:
            joined = joined.replace(entity, char)
    return joined


def _scan_html(html_text: str) -> tuple[str, str | None] | None:
    """The visible text and first error in one regex pass, or None if the text has markup
    outside `_HTML_TOKEN`'s shapes: html.parser takes ~70 µs for a 600-character card, this
    ~14 µs."""
    runs: list[str] = []
    stack: list[str] = []
    error: str | None = None
    # The matches tile the text: a run always ends at the end or at a "<" that group 2, 3 or
    # 4 takes. The scan goes on after an unmatched end tag, because later markup may still
    # need html.parser (which raises on some, such as a malformed "<![" section).
    for run, start, end, other in _HTML_TOKEN.findall(html_text):
        runs.append(run)
        if start:
            tag = start.lower()
            if tag not in _ALLOWED_TAGS:
                # An error anyway, but some tags (<script>, <textarea>, ...) make html.parser
                # read what follows as raw text, so its answer is the one to give.
                return None
            stack.append(tag)
        elif end:
            tag = end.lower()
            if stack and stack[-1] == tag:
                stack.pop()
            elif error is None:
                error = f'Unmatched end tag "{tag}"'
        elif other:
            return None
    if error is None and stack:
        error = f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
    return _unescape_runs(runs), error


def parse_html(html_text: str) -> str:
    """The visible text of a Telegram-HTML message, or ApiError as Telegram would answer."""
    text, error = _scan_html(html_text) or _parse_with_html_parser(html_text)
    if error:
        raise bad_request(f"can't parse entities: {error}")
    return text


@dataclass
class ChatMessage:
    """One message of a transcript; bot messages keep their HTML and buttons, edits in place."""

    message_id: int
    chat_id: int
    from_bot: bool
    html: str
    text: str
    reply_markup: dict[str, Any] | None
    date: int
    sender_id: int
    edits: int = 0

    def buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]

    def button(self, label_part: str) -> dict[str, Any]:
        """The first button whose text contains `label_part` (KeyError if none)."""
        for b in self.buttons():
            if label_part in b.get("text", ""):
                return b
        raise KeyError(
            f"no button with {label_part!r} in {[b.get('text') for b in self.buttons()]}"
        )


@dataclass
class CallbackAnswer:
    callback_query_id: str
    chat_id: int
    text: str | None
    show_alert: bool


@dataclass
class _Failure:
    code: int
    description: str
    retry_after: int | None
    times: int


@dataclass(frozen=True)
class FakeUser:
    id: int
    first_name: str = "Ana"
    language_code: str | None = "pt-br"
    username: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            out["language_code"] = self.language_code
        if self.username:
            out["username"] = self.username
        return out


@dataclass(frozen=True)
class _Chat:
    id: int
    type: str
    title: str | None = None
    first_name: str | None = None

    @cached_property
    def wire(self) -> dict[str, Any]:
        """Built once and shared by every message wire: the chat never changes, and nothing
        mutates a wire dict (answers are serialized, updates only read)."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title:
            out["title"] = self.title
        if self.first_name:
            out["first_name"] = self.first_name
        return out


@dataclass
class FakeBotApi:
    """The state of one fake bot: updates queue, transcripts, commands, injected errors."""

    token: str = DEFAULT_TOKEN
    bot_id: int = 7_000_000_001
    username: str = "lacre_sandbox_bot"
    first_name: str = "Lacre"
    clock: Callable[[], float] = time.time
    transcripts: dict[int, list[ChatMessage]] = field(default_factory=lambda: defaultdict(list))
    answers: list[CallbackAnswer] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    record_calls: bool = True
    keep_updates: bool = False  # keep every injected update (benchmarks replay them)
    injected: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._chats: dict[int, _Chat] = {}
        self._pending_queries: dict[str, int] = {}
        self._failures: dict[str, list[_Failure]] = defaultdict(list)
        self._blocked: set[int] = set()
        self._changed: asyncio.Event | None = None
        self._closing = False
        self.webhook: dict[str, str] = {}
        # Every bot message carries this sender; built once like `_Chat.wire`, so the bot's
        # id and names are read at construction.
        self._bot: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }
        # Per chat: message id -> message, and how many transcript entries it covers. The
        # transcripts only grow, so a lookup indexes the new tail and never scans.
        self._by_id: dict[int, dict[int, ChatMessage]] = defaultdict(dict)
        self._indexed: dict[int, int] = defaultdict(int)

    # -- the Python API: what a user does ---------------------------------------------------
    def send_text(
        self, user: FakeUser, text: str, *, chat_id: int | None = None, chat_type: str = "private"
    ) -> ChatMessage:
        """The user writes `text` (a private chat unless `chat_id`/`chat_type` say otherwise)."""
        chat = self._chat(user, chat_id, chat_type)
        message = ChatMessage(
            next(self._message_ids),
            chat.id,
            False,
            text,
            text,
            None,
            int(self.clock()),
            user.id,
        )
        self.transcripts[chat.id].append(message)
        wire = self._message_wire(message, chat, user.wire())
        command = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if command:
            wire["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command.group(0))}
            ]
        self._push({"message": wire})
        return message

    def open_chat(self, user: FakeUser) -> None:
        """The user opens the private chat without writing (the bot may now message them)."""
        self._chat(user, None, "private")

    def tap(self, user: FakeUser, message: ChatMessage, data: str) -> str:
        """The user taps a button with callback `data` under `message`; returns the query id.

        Any data can be sent, as a modified client could: the bot must check it."""
        chat = self._chats.get(message.chat_id) or self._chat(user, message.chat_id, "private")
        query_id = str(next(self._query_ids))
        self._pending_queries[query_id] = chat.id
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.wire(),
                    "message": self._message_wire(message, chat, self._bot_wire()),
                    "chat_instance": str(abs(chat.id) * 7919),
                    "data": data,
                }
            }
        )
        return query_id

    def press(self, user: FakeUser, message: ChatMessage, label_part: str) -> str:
        """Tap the button whose label contains `label_part`."""
        data = message.button(label_part).get("callback_data")
        if data is None:
            raise KeyError(f"button {label_part!r} has no callback data")
        return self.tap(user, message, str(data))

    # -- the Python API: errors and blocks --------------------------------------------------
    def fail_next(
        self,
        method: str,
        code: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` answer this error instead of working."""
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                403: "Forbidden: bot was blocked by the user",
                429: f"Too Many Requests: retry after {retry_after or 1}",
            }.get(code, "Internal Server Error")
        if code == 429 and retry_after is None:
            retry_after = 1
        self._failures[method.lower()].append(_Failure(code, description, retry_after, times))

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: every send to this chat answers 403 until unblocked."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    # -- the Python API: what the bot did ---------------------------------------------------
    def messages(self, chat_id: int) -> list[ChatMessage]:
        return list(self.transcripts.get(chat_id, []))

    def bot_messages(self, chat_id: int) -> list[ChatMessage]:
        return [m for m in self.transcripts.get(chat_id, []) if m.from_bot]

    def last_bot_message(self, chat_id: int) -> ChatMessage:
        found = self.bot_messages(chat_id)
        if not found:
            raise LookupError(f"the bot sent nothing to chat {chat_id}")
        return found[-1]

    def answer_for(self, query_id: str) -> CallbackAnswer | None:
        for a in self.answers:
            if a.callback_query_id == query_id:
                return a
        return None

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method.lower())

    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Check `predicate` on every change until it returns something truthy, or time out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"condition not met within {within} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed_event().wait(), left)

    async def answered(self, query_id: str, within: float = 5.0) -> CallbackAnswer:
        found: CallbackAnswer = await self.wait_for(lambda: self.answer_for(query_id), within)
        return found

    async def idle(self, within: float = 5.0) -> None:
        """Wait until every injected update was fetched and every tap answered."""
        await self.wait_for(lambda: not self._updates and not self._pending_queries, within)

    def close(self) -> None:
        """Release long polls (shutdown)."""
        self._closing = True
        self._notify()

    # -- the wire ---------------------------------------------------------------------------
    async def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """Answer one Bot API call with Telegram's status code and JSON body."""
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            result = await self._dispatch(method.lower(), params)
            if result is True:
                return 200, _OK_TRUE
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.code, exc.body()
        return status, _encode(body).encode("utf-8")

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if self.record_calls and method != "getupdates":
            self.calls.append((method, params))
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            self._notify()
            raise ApiError(failure.code, failure.description, failure.retry_after)
        handler = _METHODS.get(method)
        if handler is None:
            raise ApiError(404, "Not Found")
        result = handler(self, params)
        if asyncio.iscoroutine(result):
            result = await result
        self._notify()
        return result

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._bot_wire(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if offset:
            # Telegram forgets every update below the offset: they were confirmed.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._notify()
        if timeout and not self._updates:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._updates and not self._closing:
                left = deadline - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed_event().wait(), left)
        return self._updates[:limit]

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        """Remember where updates would be pushed (the sandbox itself only serves polling)."""
        url = str(params.get("url") or "")
        if url and not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
            raise bad_request("bad webhook: HTTPS url must be provided for webhook")
        self.webhook = {"url": url, "secret_token": str(params.get("secret_token") or "")}
        return True

    def _true(self, params: dict[str, Any]) -> bool:
        return True

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not commands:
            raise bad_request("commands must be a non-empty list")
        for c in commands:
            name = str(c.get("command", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return self.commands.get(self._commands_key(params), [])

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return (str(scope.get("type", "default")), str(params.get("language_code") or ""))

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._target_chat(params)
        html_text = str(params.get("text") or "")
        text = self._visible(html_text, params)
        markup = self._markup(params)
        message = ChatMessage(
            next(self._message_ids),
            chat.id,
            True,
            html_text,
            text,
            markup,
            int(self.clock()),
            self.bot_id,
        )
        self.transcripts[chat.id].append(message)
        return self._message_wire(message, chat, self._bot_wire())

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message, chat = self._find_message(params)
        html_text = str(params.get("text") or "")
        text = self._visible(html_text, params)
        markup = self._markup(params)
        if html_text == message.html and markup == message.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.html, message.text, message.reply_markup = html_text, text, markup
        message.edits += 1
        return self._message_wire(message, chat, self._bot_wire())

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message, chat = self._find_message(params)
        markup = self._markup(params)
        if markup == message.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.reply_markup = markup
        message.edits += 1
        return self._message_wire(message, chat, self._bot_wire())

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        chat_id = self._pending_queries.pop(query_id, None)
        if chat_id is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.answers.append(
            CallbackAnswer(
                query_id,
                chat_id,
                None if text is None else str(text),
                str(params.get("show_alert", "false")).lower() == "true",
            )
        )
        return True

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._target_chat(params)
        return True

    # -- helpers ----------------------------------------------------------------------------
    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        # Wake every waiter once; the next waiter gets a fresh event.
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _push(self, payload: dict[str, Any]) -> None:
        if self.keep_updates:
            self.injected.append(payload)
        self._updates.append({"update_id": next(self._update_ids), **payload})
        self._notify()

    def replay(self, payload: dict[str, Any]) -> None:
        """Inject an update recorded elsewhere (same payload, new update and query ids: a
        payload may be replayed many times, and each tap must be answered once)."""
        wire = payload.get("message") or payload.get("callback_query", {}).get("message", {})
        chat = wire.get("chat", {})
        if chat and chat["id"] not in self._chats:
            self._chats[chat["id"]] = _Chat(
                chat["id"], chat.get("type", "private"), chat.get("title"), chat.get("first_name")
            )
        query = payload.get("callback_query")
        if query is not None:
            query_id = str(next(self._query_ids))
            self._pending_queries[query_id] = chat.get("id", 0)
            payload = {**payload, "callback_query": {**query, "id": query_id}}
        self._push(payload)

    def _chat(self, user: FakeUser, chat_id: int | None, chat_type: str) -> _Chat:
        cid = user.id if chat_id is None else chat_id
        chat = self._chats.get(cid)
        if chat is None:
            if chat_type == "private":
                chat = _Chat(cid, "private", first_name=user.first_name)
            else:
                chat = _Chat(cid, chat_type, title=f"Grupo {abs(cid)}")
            self._chats[cid] = chat
        return chat

    def _target_chat(self, params: dict[str, Any]) -> _Chat:
        raw = params.get("chat_id")
        try:
            chat_id = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            chat_id = None
        if chat_id is None or chat_id not in self._chats:
            raise bad_request("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return self._chats[chat_id]

    def _find_message(self, params: dict[str, Any]) -> tuple[ChatMessage, _Chat]:
        chat = self._target_chat(params)
        message_id = int(params.get("message_id") or 0)
        transcript = self.transcripts.get(chat.id, [])
        index, indexed = self._by_id[chat.id], self._indexed[chat.id]
        if indexed < len(transcript):
            for m in transcript[indexed:]:
                index.setdefault(m.message_id, m)  # the first one, as a scan would find
            self._indexed[chat.id] = len(transcript)
        found = index.get(message_id)
        if found is None:
            raise bad_request("message to edit not found")
        if not found.from_bot:
            raise bad_request("message can't be edited")
        return found, chat

    @staticmethod
    def _visible(html_text: str, params: dict[str, Any]) -> str:
        if not html_text.strip():
            raise bad_request("message text is empty")
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            text = parse_html(html_text)
        elif mode:
            raise bad_request(f"unsupported parse_mode {mode!r} in this sandbox")
        else:
            text = html_text
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        return text

    @staticmethod
    def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if isinstance(markup, dict) and (
            markup.get("force_reply") is True
            or markup.get("remove_keyboard") is True
            or isinstance(markup.get("keyboard"), list)
        ):
            return markup
        if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
            raise bad_request("can't parse reply keyboard markup JSON object")
        for row in markup["inline_keyboard"]:
            if not isinstance(row, list):
                raise bad_request("can't parse reply keyboard markup JSON object")
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                    raise bad_request("BUTTON_TEXT_INVALID")
                data, url = button.get("callback_data"), button.get("url")
                if (data is None) == (url is None):
                    raise bad_request("BUTTON_TYPE_INVALID")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
                if url is not None and urlsplit(str(url)).scheme not in ("http", "https", "tg"):
                    raise bad_request("BUTTON_URL_INVALID")
        return markup

    def _bot_wire(self) -> dict[str, Any]:
        return self._bot

    @staticmethod
    def _message_wire(message: ChatMessage, chat: _Chat, sender: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": message.message_id,
            "from": sender,
            "chat": chat.wire,
            "date": message.date,
            "text": message.text,
        }
        if message.edits:
            out["edit_date"] = message.date
        if message.reply_markup:
            out["reply_markup"] = message.reply_markup
        return out


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_METHODS: dict[str, Callable[[FakeBotApi, dict[str, Any]], Any]] = {
    "getme": FakeBotApi._get_me,
    "getupdates": FakeBotApi._get_updates,
    "deletewebhook": FakeBotApi._true,
    "setwebhook": FakeBotApi._set_webhook,
    "setmycommands": FakeBotApi._set_my_commands,
    "getmycommands": FakeBotApi._get_my_commands,
    "sendmessage": FakeBotApi._send_message,
    "editmessagetext": FakeBotApi._edit_message_text,
    "editmessagereplymarkup": FakeBotApi._edit_message_reply_markup,
    "answercallbackquery": FakeBotApi._answer_callback_query,
    "sendchataction": FakeBotApi._send_chat_action,
    "close": FakeBotApi._true,
    "logout": FakeBotApi._true,
}


def decode_params(pairs: list[tuple[str, str]] | dict[str, Any]) -> dict[str, Any]:
    """Form values arrive as strings; Telegram reads objects as JSON and ids as numbers."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    out: dict[str, Any] = {}
    for key, value in items:
        if isinstance(value, str) and key in _JSON_FIELDS:
            try:
                out[key] = json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
        elif isinstance(value, str) and key in _INT_FIELDS:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")


def asgi_app(api: FakeBotApi) -> Starlette:
    """The HTTP face of `api`: `POST|GET /bot<token>/<method>`, JSON, form or query params."""

    async def endpoint(request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        try:
            params: dict[str, Any] = decode_params(list(request.query_params.multi_items()))
            if request.method == "POST":
                ctype = request.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    body = await request.json()
                    if not isinstance(body, dict):
                        raise bad_request("parameters must be a JSON object")
                    params.update(body)
                elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/")):
                    form = await request.form()
                    params.update(
                        decode_params([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
                    )
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.code)
        except ValueError:
            error = bad_request("can't parse JSON")
            return JSONResponse(error.body(), status_code=error.code)
        status, body = await api.handle(token, method, params)
        return Response(body, status_code=status, media_type="application/json")

    async def not_found(request: Request) -> Response:
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, 404)

    return Starlette(
        routes=[
            Route("/bot{token}/{method}", endpoint, methods=["GET", "POST"]),
            Route("/{path:path}", not_found, methods=["GET", "POST"]),
        ]
    )


class BotApiServer:
    """Serves a FakeBotApi over HTTP on 127.0.0.1 inside the running event loop."""

    def __init__(self, api: FakeBotApi, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api, self.host, self.port = api, host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """What python-telegram-bot's `base_url` (TELEGRAM_API_BASE_URL) should be."""
        return f"http://{self.host}:{self.port}/bot"

    async def start(self) -> None:
        # Naming IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without
        # it every small answer waits for a delayed ACK (~40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            asgi_app(self.api),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.api.close()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


class InProcessRequest(BaseRequest):
    """A python-telegram-bot transport that calls a FakeBotApi directly, without sockets."""

    def __init__(self, api: FakeBotApi, read_timeout: float | None = 5.0) -> None:
        self.api = api
        self._read_timeout = read_timeout

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

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
        parts = urlsplit(url)
        match = _PATH.match(parts.path)
        if match is None:
            return 404, b'{"ok":false,"error_code":404,"description":"Not Found"}'
        params: dict[str, Any] = dict(parse_qsl(parts.query)) if parts.query else {}
        if request_data is not None:
            # What `json_parameters` gives, each value encoded once: that property encodes
            # every non-string value twice.
            for key, value in request_data.parameters.items():
                if isinstance(value, str):
                    params[key] = value
                elif type(value) is int:
                    params[key] = str(value)  # what json.dumps writes for an int, sooner
                else:
                    params[key] = json.dumps(value)
        try:
            decoded = decode_params(params)
        except ApiError as exc:
            return exc.code, json.dumps(exc.body()).encode()
        return await self.api.handle(match["token"], match["method"], decoded)
