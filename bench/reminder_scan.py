"""Scheduler benchmark: the tick's due-work query over 1,000,000 envelopes, and paced sends.

Run from the repository root:

    python bench/reminder_scan.py                     # both databases, then 10,000 nudges
    python bench/reminder_scan.py --n 200000 --nudges 1000 --skip-postgres

Part 1 builds the real schema (migrations) with N envelopes on a temporary SQLite file and on
a PostgreSQL database made for the run and dropped afterwards (admin URL from
TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test), in a steady state: every
pending envelope inside the planning horizon has its plan row, a few are due. It prints p50/p99
of the query each tick runs, of the sweep that one process runs every 5 minutes, and of the
expiry scan, each with its EXPLAIN (QUERY PLAN) output.

Part 2 sends N nudges through the pacer and the real python-telegram-bot `Bot`, over HTTP, to
the sandbox's fake Bot API wrapped in Telegram's flood limits (429 with retry_after above 30
messages/s overall or 1/s per chat), and prints the total time against the floor of N/25 s and
the number of 429 answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _databases import temporary_postgres, temporary_sqlite
from _timing import percentile
from sqlalchemy import Engine, insert, text

from core.envelopes import EnvelopeStatus
from core.reminders import (
    DEFAULT_OFFSETS,
    QUIET_SLACK,
    ReminderSettings,
    nudge_slots,
    plan_nudge,
)
from storage.db import make_engine
from storage.repositories import accounts as accounts_t
from storage.repositories import envelopes as env_table
from storage.repositories_scheduler import due_work_query, expiry_query, progress, sweep_query

# The Telegram limits wrapper lives with the test support; the bench reuses it as is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SP = "America/Sao_Paulo"
ACCOUNTS = 2_000
# Share of envelopes per status, and the deadline range (days around NOW) each is drawn from.
MIX: list[tuple[str, float, tuple[float, float]]] = [
    (EnvelopeStatus.CONCLUIDO.value, 0.60, (-400, 60)),
    (EnvelopeStatus.CANCELADO.value, 0.12, (-400, 60)),
    (EnvelopeStatus.RASCUNHO.value, 0.08, (1, 90)),
    (EnvelopeStatus.BLOQUEADO.value, 0.02, (-30, 60)),
    (EnvelopeStatus.PENDENTE.value, 0.18, (-30, 60)),
]


# -- databases -----------------------------------------------------------------------------------
def envelopes(n: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    weights = [w for _, w, _ in MIX]
    for i in range(1, n + 1):
        status, _, (lo, hi) = rng.choices(MIX, weights)[0]
        expires = NOW + timedelta(seconds=rng.uniform(lo * 86400, hi * 86400))
        created = expires - timedelta(days=rng.uniform(10, 40))
        yield (
            i,
            rng.randint(1, ACCOUNTS),
            f"ENV-{i}",
            f"Contrato {i}",
            status,
            3,
            expires,
            created,
        )


COLUMNS = (
    "id",
    "account_id",
    "ref",
    "title",
    "status",
    "quoted_credits",
    "expires_at",
    "created_at",
)


def load(url: str, n: int) -> tuple[Engine, float]:
    """Accounts, N envelopes, and the plans of a scheduler that has been running."""
    started = time.perf_counter()
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(
            insert(accounts_t),
            [
                {
                    "id": i,
                    "name": f"Conta {i}",
                    "plan_code": "essencial",
                    "timezone": SP,
                    "language": "pt-BR",
                    "credits": 100,
                    "notification_credits": 5,
                    "created_at": NOW - timedelta(days=400),
                }
                for i in range(1, ACCOUNTS + 1)
            ],
        )
    horizon = NOW + max(DEFAULT_OFFSETS) + QUIET_SLACK
    plans: list[dict[str, Any]] = []
    rows = envelopes(n)
    # Loading is faster without the secondary indexes; the same ones are built again after.
    indexes = list(env_table.indexes)
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    if postgres:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            copy_sql = (
                "COPY envelopes (id, account_id, ref, title, status, quoted_credits, expires_at,"
                " created_at, description, icp, ordered, tags, search_text, version, updated_at)"
                " FROM STDIN"
            )
            with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row((*row, "", False, False, "[]", row[3].lower(), 0, row[7]))
                    collect(row, horizon, plans)
            raw.commit()
        finally:
            raw.close()
    else:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA synchronous=OFF")  # a throwaway file: no fsync while loading
            cursor.execute("BEGIN")
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                collect(row, horizon, plans)
                batch.append(
                    (
                        *row[:6],
                        _naive(row[6]),
                        _naive(row[7]),
                        "",
                        0,
                        0,
                        "[]",
                        "",
                        0,
                        _naive(row[7]),
                    )
                )
                if len(batch) == 50_000:
                    cursor.executemany(SQLITE_INSERT, batch)
                    batch.clear()
            cursor.executemany(SQLITE_INSERT, batch)
            cursor.execute("COMMIT")
        finally:
            raw.close()
    with engine.begin() as conn:
        for index in indexes:
            index.create(conn)
        for start in range(0, len(plans), 20_000):
            conn.execute(insert(progress), plans[start : start + 20_000])
        conn.execute(text("ANALYZE"))
    return engine, time.perf_counter() - started


SQLITE_INSERT = (
    "INSERT INTO envelopes (id, account_id, ref, title, status, quoted_credits, expires_at,"
    " created_at, description, icp, ordered, tags, search_text, version, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _naive(moment: datetime) -> str:
    """SQLAlchemy's SQLite text form of a UTC timestamp, so comparisons match its own."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def collect(row: tuple[Any, ...], horizon: datetime, plans: list[dict[str, Any]]) -> None:
    """The plan a running scheduler would hold for this envelope (steady state)."""
    env_id, account_id, _, _, status, _, expires, created = row
    if status != EnvelopeStatus.PENDENTE.value or not NOW < expires <= horizon:
        return
    zone = ZoneInfo(SP)
    settings = ReminderSettings()
    slots = nudge_slots(expires, settings, zone, created)
    upcoming = plan_nudge(slots, expires, NOW, settings.quiet, zone).next_check or expires
    plans.append(
        {
            "envelope_id": env_id,
            "account_id": account_id,
            "deadline": expires,
            "next_check_at": upcoming,
            "updated_at": NOW,
        }
    )


# -- timing --------------------------------------------------------------------------------------
def timed(engine: Engine, build: Callable[[datetime], Any], runs: int) -> tuple[list[float], int]:
    samples: list[float] = []
    found = 0
    with engine.connect() as conn:
        for i in range(runs + 10):
            now = NOW + timedelta(seconds=i % 60)  # a tick: what came due since the last one
            stmt = build(now)
            started = time.perf_counter()
            found = len(conn.execute(stmt).all())
            elapsed = time.perf_counter() - started
            if i >= 10:  # warm-up
                samples.append(elapsed)
        conn.rollback()
    return samples, found


def explain(engine: Engine, stmt: Any) -> str:
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN ANALYZE" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"{prefix} {compiled}").all()
    if engine.dialect.name == "postgresql":
        return "\n".join(f"    {r[0]}" for r in result)
    return "\n".join(f"    {r[-1]}" for r in result)


def scan(label: str, url: str, n: int, runs: int) -> None:
    engine, seconds = load(url, n)
    try:
        with engine.connect() as conn:
            total = conn.exec_driver_sql("SELECT count(*) FROM envelopes").scalar()
            planned = conn.exec_driver_sql("SELECT count(*) FROM reminder_progress").scalar()
        print(f"\n== {label}: {total:,} envelopes, {planned:,} plans, set up in {seconds:.1f} s")
        horizon = max(DEFAULT_OFFSETS) + QUIET_SLACK
        queries: list[tuple[str, Callable[[datetime], Any]]] = [
            ("due-work query (every tick)", lambda now: due_work_query(now, 500)),
            ("sweep (one process, every 5 min)", lambda now: sweep_query(now, now + horizon, 500)),
            # The expiry watermark is a tick behind, less its 10-minute margin.
            ("expiry scan (every tick)", lambda now: expiry_query(now - 11 * MINUTE, now, 500)),
        ]
        for name, build in queries:
            samples, found = timed(engine, build, runs)
            print(
                f"{name:36s} p50 {percentile(samples, 50) * 1000:6.2f} ms   "
                f"p99 {percentile(samples, 99) * 1000:6.2f} ms   "
                f"mean {statistics.fmean(samples) * 1000:6.2f} ms   rows {found}"
            )
            print(explain(engine, build(NOW)))
    finally:
        engine.dispose()


# -- pacing --------------------------------------------------------------------------------------
def pace(nudges: int, busy_chats: int, per_busy_chat: int) -> None:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from bot.sandbox.bot_api import DEFAULT_TOKEN, BotApiServer, FakeBotApi, FakeUser
    from bot.scheduler.pacer import Delivery, Outgoing, Pacer
    from tests.support.telegram_limits import TelegramLimits

    api = FakeBotApi(record_calls=False)
    limits = TelegramLimits(api)
    server = BotApiServer(limits)  # type: ignore[arg-type]
    ready = threading.Event()
    server_loop = asyncio.new_event_loop()

    def serve() -> None:  # the fake Telegram gets its own loop, as a remote server would
        asyncio.set_event_loop(server_loop)
        server_loop.run_until_complete(server.start())
        ready.set()
        server_loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(30)
    singles = nudges - busy_chats * per_busy_chat
    chats = list(range(10_000_000, 10_000_000 + busy_chats + singles))
    for chat in chats:
        api.send_text(FakeUser(chat), "/start")
    messages = [
        Outgoing(chat, f"⏰ <b>Prazo se aproximando</b> #{k}")
        for k in range(per_busy_chat)
        for chat in chats[:busy_chats]
    ] + [Outgoing(chat, "⏰ <b>Prazo se aproximando</b>") for chat in chats[busy_chats:]]

    async def run() -> tuple[list[Delivery], float, int]:
        bot = Bot(
            DEFAULT_TOKEN, base_url=server.base_url, request=HTTPXRequest(connection_pool_size=8)
        )
        await bot.initialize()
        pacer = Pacer(bot)
        started = time.perf_counter()
        results = await pacer.send(messages)
        took = time.perf_counter() - started
        await bot.shutdown()
        return results, took, pacer.retry_afters

    results, took, retried = asyncio.run(run())
    asyncio.run_coroutine_threadsafe(server.stop(), server_loop).result(30)
    server_loop.call_soon_threadsafe(server_loop.stop)
    thread.join(10)
    floor = len(messages) / 25
    sent = sum(r is Delivery.SENT for r in results)
    print(
        f"\n== pacer: {len(messages):,} nudges to {len(chats):,} chats "
        f"({busy_chats} chats get {per_busy_chat} each)"
    )
    print(
        f"total {took:.1f} s   floor N/25 = {floor:.1f} s   ratio {took / floor:.3f}   "
        f"sent {sent:,}   429 answers {limits.too_many + retried} "
        f"(limits {limits.too_many}, retry_after seen {retried})"
    )
    print(
        f"busiest second {limits.busiest_second()} messages   "
        f"tightest gap in one chat {limits.tightest_chat_gap():.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="envelopes")
    parser.add_argument("--runs", type=int, default=500, help="timed runs per query")
    parser.add_argument("--nudges", type=int, default=10_000)
    parser.add_argument("--busy-chats", type=int, default=1_000)
    parser.add_argument("--per-busy-chat", type=int, default=5)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-pacer", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; now = {NOW:%Y-%m-%d %H:%M} UTC")
    if not args.skip_sqlite:
        with temporary_sqlite("scan.db", migrated=True) as url:
            scan("SQLite", url, args.n, args.runs)
    if not args.skip_postgres:
        with temporary_postgres(migrated=True) as url:
            scan("PostgreSQL", url, args.n, args.runs)
    if not args.skip_pacer and args.nudges:
        busy = min(args.busy_chats, args.nudges // max(1, args.per_busy_chat))
        pace(args.nudges, busy, args.per_busy_chat)


if __name__ == "__main__":
    main()
