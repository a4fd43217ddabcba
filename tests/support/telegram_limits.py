"""Telegram's flood limits around the sandbox's fake Bot API: 429 with retry_after, like the
real one, above 30 messages in any second or 2 messages to one chat within a second."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bot.sandbox.bot_api import FakeBotApi


class TelegramLimits:
    """Wraps a FakeBotApi (it has the same `handle`/`close`), so `BotApiServer` can serve it."""

    def __init__(
        self,
        api: FakeBotApi,
        *,
        per_second: int = 30,
        per_chat_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.per_second = per_second
        self.per_chat_seconds = per_chat_seconds
        self.clock = clock
        self._window: deque[float] = deque()
        self._last_in_chat: dict[int, float] = {}
        self.accepted: list[tuple[float, int]] = []  # (arrival, chat) of every message let through
        self.too_many = 0  # 429 answers given by these limits
        self.answers: list[tuple[float, int, int]] = []  # (arrival, chat, status) of each send

    async def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        if method.lower() != "sendmessage":
            return await self.api.handle(token, method, params)
        now = self.clock()
        chat = int(params.get("chat_id") or 0)
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        wait = 0.0
        if len(self._window) >= self.per_second:
            wait = self._window[0] + 1.0 - now
        last = self._last_in_chat.get(chat)
        if last is not None and now - last < self.per_chat_seconds:
            wait = max(wait, last + self.per_chat_seconds - now)
        if wait > 0:
            self.too_many += 1
            self.answers.append((now, chat, 429))
            retry = max(1, math.ceil(wait))
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry}",
                "parameters": {"retry_after": retry},
            }
            return 429, json.dumps(body).encode()
        status, answer = await self.api.handle(token, method, params)
        self.answers.append((now, chat, status))
        if status == 200:
            self._window.append(now)
            self._last_in_chat[chat] = now
            self.accepted.append((now, chat))
        return status, answer

    def close(self) -> None:
        self.api.close()

    # -- what a test reads back --------------------------------------------------------------
    def busiest_second(self) -> int:
        """The most messages accepted in any 1-second window."""
        times = [t for t, _ in self.accepted]
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def tightest_chat_gap(self) -> float:
        """The shortest time between two messages accepted for one chat."""
        last: dict[int, float] = {}
        gap = math.inf
        for t, chat in self.accepted:
            if chat in last:
                gap = min(gap, t - last[chat])
            last[chat] = t
        return gap
