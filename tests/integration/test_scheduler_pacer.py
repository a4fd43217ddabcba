"""The pacer through the real python-telegram-bot `Bot`, over HTTP, against the sandbox's fake
Bot API wrapped in Telegram's flood limits (429 above 30/s overall or 1/s per chat)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.request import HTTPXRequest

from bot.sandbox.bot_api import DEFAULT_TOKEN, BotApiServer, FakeBotApi, FakeUser
from bot.scheduler.pacer import Delivery, Outgoing, Pacer
from tests.support.telegram_limits import TelegramLimits


@dataclass
class Wire:
    api: FakeBotApi
    limits: TelegramLimits
    bot: Bot
    blocked: list[int]

    def pacer(self, **kwargs: object) -> Pacer:
        async def on_blocked(chat_id: int) -> None:
            self.blocked.append(chat_id)

        return Pacer(self.bot, on_blocked=on_blocked, **kwargs)  # type: ignore[arg-type]

    def open_chats(self, *chat_ids: int) -> None:
        for chat_id in chat_ids:  # a user writes first: Telegram knows the chat
            self.api.send_text(FakeUser(chat_id), "/start")


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    api = FakeBotApi()
    limits = TelegramLimits(api)
    server = BotApiServer(limits)  # type: ignore[arg-type]
    await server.start()
    bot = Bot(
        DEFAULT_TOKEN,
        base_url=server.base_url,
        request=HTTPXRequest(connection_pool_size=8),
    )
    await bot.initialize()
    try:
        yield Wire(api, limits, bot, [])
    finally:
        await bot.shutdown()
        await server.stop()


def note(chat_id: int, n: int) -> Outgoing:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Abrir envelope", callback_data="env:1")]])
    return Outgoing(chat_id, f"<b>Lembrete {n}</b> para {chat_id}", markup)


async def test_paced_nudges_stay_under_telegrams_limits_and_meet_no_429(wire: Wire) -> None:
    busy, single = [501, 502, 503], list(range(1000, 1060))
    wire.open_chats(*busy, *single)
    messages = [note(c, n) for n in range(6) for c in busy] + [note(c, 0) for c in single]
    pacer = wire.pacer()
    started = time.monotonic()
    results = await pacer.send(messages)
    took = time.monotonic() - started
    assert results == [Delivery.SENT] * len(messages)
    assert (wire.limits.too_many, pacer.retry_afters) == (0, 0)
    # 25 a second on a fixed grid: a window catches at most one more, or two after a stall.
    assert wire.limits.busiest_second() <= 27
    assert wire.limits.tightest_chat_gap() >= 1.0
    assert took >= 5 * 1.0  # six messages to one chat need five gaps of a second
    for chat in busy:  # order kept per chat, with the HTML and the button
        sent = wire.api.bot_messages(chat)
        assert [m.text for m in sent] == [f"Lembrete {n} para {chat}" for n in range(6)]
        assert sent[0].buttons()[0]["callback_data"] == "env:1"


class TimedPacer(Pacer):
    """Records when each send leaves the pacer (after its turn)."""

    starts: list[float]

    async def _turn(self, chat_id: int) -> None:
        await super()._turn(chat_id)
        self.starts.append(time.monotonic())


async def test_a_retry_after_pauses_every_send_and_the_message_still_goes(wire: Wire) -> None:
    chats = list(range(40, 50))
    wire.open_chats(*chats)
    wire.api.fail_next("sendMessage", 429, retry_after=1)
    pacer = TimedPacer(wire.bot)
    pacer.starts = []
    results = await pacer.send([note(c, 0) for c in chats])
    assert results == [Delivery.SENT] * len(chats)
    assert pacer.retry_afters == 1
    assert [len(wire.api.bot_messages(c)) for c in chats] == [1] * len(chats)
    ((paused_at, until),) = pacer.pauses
    assert until - paused_at >= 1.0
    # Every send that had not left when Telegram said "wait" waited the whole second.
    assert all(start >= until for start in pacer.starts if start > paused_at)
    assert len(pacer.starts) == len(chats) + 1  # the refused one went again
    (refused,) = [t for t, _, status in wire.limits.answers if status == 429]
    retried = next(t for t, chat in wire.limits.accepted if chat == chats[0])
    assert retried >= refused + 1.0


async def test_a_user_who_blocked_the_bot_is_reported_and_skipped_later(wire: Wire) -> None:
    wire.open_chats(21, 22)
    wire.api.block(21)
    pacer = wire.pacer()
    first = await pacer.send([note(21, 0), note(22, 0)])
    assert first == [Delivery.BLOCKED, Delivery.SENT]
    assert wire.blocked == [21]
    calls = wire.api.count("sendMessage")
    again = await pacer.send([note(21, 1), note(21, 2), note(22, 1)])
    assert again == [Delivery.BLOCKED, Delivery.BLOCKED, Delivery.SENT]
    assert wire.api.count("sendMessage") == calls + 1  # nothing more went to the blocked chat
    assert wire.blocked == [21]


async def test_a_bad_request_is_not_retried(wire: Wire) -> None:
    wire.open_chats(31)
    wire.api.fail_next("sendMessage", 400, "Bad Request: can't parse entities")
    pacer = wire.pacer()
    assert await pacer.send([note(31, 0)]) == [Delivery.FAILED]
    assert wire.api.count("sendMessage") == 1
    assert await pacer.send([note(31, 1)]) == [Delivery.SENT]
