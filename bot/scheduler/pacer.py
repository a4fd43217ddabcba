"""A paced Telegram sender: at most N messages per second overall and one per second per chat.

python-telegram-bot's AIORateLimiter caps the overall and group rates but does not space
messages to one private chat, and it does not retry a 429 by default. This sender does both:
sends start on a fixed grid 1/N s apart (a stall restarts the grid rather than bursting), a
chat waits at least `per_chat_seconds` between two of its messages, a `RetryAfter` pauses every
send for the time Telegram asked and then retries the same message, and `Forbidden` (the user
blocked the bot) records the block and skips that chat from then on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.warnings import PTBDeprecationWarning

logger = logging.getLogger(__name__)

TELEGRAM_MESSAGES_PER_SECOND = 25.0  # Telegram answers 429 from about 30 per second
# One per second per chat, plus a margin for the jitter between our clock and Telegram's.
PER_CHAT_SECONDS = 1.05


@dataclass(frozen=True)
class Outgoing:
    chat_id: int
    html: str
    markup: InlineKeyboardMarkup | None = None


class Delivery(StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the user blocked the bot; nothing more goes to them
    FAILED = "failed"  # refused (400), timed out or unreachable: not retried blindly


class Sender(Protocol):
    async def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Deliver in order per chat; one result per message, same order."""
        ...


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # v22 warns that the int form goes away; both forms are read here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Pacer:
    """The Sender over a `telegram.Bot`; keep one per process so its pacing spans batches."""

    def __init__(
        self,
        bot: Bot,
        *,
        per_second: float = TELEGRAM_MESSAGES_PER_SECOND,
        per_chat_seconds: float = PER_CHAT_SECONDS,
        on_blocked: Callable[[int], Awaitable[object]] | None = None,
        max_attempts: int = 5,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second <= 0 or per_chat_seconds < 0:
            raise ValueError("rates must be positive")
        self.bot = bot
        self.interval = 1.0 / per_second
        self.per_chat_seconds = per_chat_seconds
        self.on_blocked = on_blocked
        self.max_attempts = max_attempts
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_in_chat: dict[int, float] = {}
        self._blocked: set[int] = set()
        self.retry_afters = 0  # 429 answers seen: the target is none
        self.pauses: list[tuple[float, float]] = []  # (when, until) of each RetryAfter pause

    async def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        self._forget_idle_chats()
        results = [Delivery.FAILED] * len(messages)
        by_chat: dict[int, list[int]] = defaultdict(list)
        for index, message in enumerate(messages):
            by_chat[message.chat_id].append(index)

        async def chat_queue(indexes: list[int]) -> None:
            for index in indexes:
                results[index] = await self._deliver(messages[index])

        await asyncio.gather(*(chat_queue(indexes) for indexes in by_chat.values()))
        return results

    async def _deliver(self, message: Outgoing) -> Delivery:
        attempts = 0
        while True:
            if message.chat_id in self._blocked:
                return Delivery.BLOCKED
            attempts += 1
            await self._turn(message.chat_id)
            try:
                await self.bot.send_message(
                    message.chat_id,
                    message.html,
                    parse_mode=ParseMode.HTML,
                    reply_markup=message.markup,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return Delivery.SENT
            except RetryAfter as exc:
                self.retry_afters += 1
                wait = _seconds(exc)
                # Flood control is per bot: everyone waits, then this message goes again.
                now = self._monotonic()
                self._paused_until = max(self._paused_until, now + wait)
                self.pauses.append((now, self._paused_until))
                logger.warning("telegram asked to wait %.1fs (429)", wait)
            except Forbidden:
                self._blocked.add(message.chat_id)
                if self.on_blocked is not None:
                    await self.on_blocked(message.chat_id)
                return Delivery.BLOCKED
            except (BadRequest, TimedOut) as exc:
                # A 400 will not get better, and a timeout may have been delivered already.
                logger.warning("nudge not delivered: %s", type(exc).__name__)
                return Delivery.FAILED
            except NetworkError as exc:
                logger.warning(
                    "telegram unreachable (%s), attempt %d", type(exc).__name__, attempts
                )
            if attempts >= self.max_attempts:
                return Delivery.FAILED

    async def _turn(self, chat_id: int) -> None:
        """Wait for this chat's spacing, then for the next free start on the global grid."""
        last = self._last_in_chat.get(chat_id)
        if last is not None:
            wait = last + self.per_chat_seconds - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
        async with self._lock:  # FIFO: chats take global starts in the order they asked
            # Looked at again after each sleep: a 429 may have paused everyone meanwhile.
            while (start := max(self._next_start, self._paused_until)) > (now := self._monotonic()):
                await self._sleep(start - now)
            actual = self._monotonic()
            # Starts stay on a fixed grid, so wake-up delays do not add up and slow the rate;
            # after a stall the grid restarts from now, so the backlog never goes as a burst.
            self._next_start = max(start, actual - self.interval) + self.interval
            self._last_in_chat[chat_id] = actual

    def _forget_idle_chats(self) -> None:
        horizon = self._monotonic() - self.per_chat_seconds
        for chat_id in [c for c, at in self._last_in_chat.items() if at < horizon]:
            del self._last_in_chat[chat_id]
