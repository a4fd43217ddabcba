"""Bot throughput: the full stack (python-telegram-bot, handlers, use cases, SQLite) against the
fake Bot API, beside a bare echo bot on the same framework and transport (the floor).

The mix: /envelopes and list pages, envelope cards, seal (proposal + confirmation) and resend
(free e-mail now, paid SMS proposal), over an account with 10,000 envelopes. Prints updates/s,
p50/p99 handler latency for both bots and the ratio.

    python bench/bot_throughput.py [--updates 4000] [--envelopes 10000] [--transport inproc|http]
                                   [--repeat 3] [--echo-passes 3] [--concurrent N] [--breakdown]
                                   [--json] [--same-process]

With `--repeat N` each run is a new Python process (see `run_apart`), unless `--same-process`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _timing import percentile
from sqlalchemy import insert, select
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.bootstrap import bootstrap
from bot.sandbox.bot_api import BotApiServer, ChatMessage, FakeBotApi, FakeUser, InProcessRequest
from bot.settings import Settings
from bot.telegram import render
from bot.telegram.app import build_application
from core.accounts import Role
from core.clock import FixedClock
from storage import migrate
from storage.audit import audit
from storage.checkpoints import WalCheckpointer
from storage.repositories import documents, envelopes, fold, signers, users
from storage.repositories_bot import confirmations

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def seed(
    url: str, n_envelopes: int, n_users: int
) -> tuple[Any, list[int], dict[str, list[int]], dict[int, int]]:
    """A migrated SQLite file with one account, `n_users` linked admins and the envelopes."""
    migrate.upgrade(url)
    app = bootstrap(Settings(database_url=url, _env_file=None), clock=FixedClock(NOW))  # type: ignore[call-arg]
    account = app.lacre.create_account("Bench Ltda", "empresarial")
    app.lacre.grant(account.id, credits=10_000_000, notification_credits=10_000_000)
    telegram_ids = list(range(50_000, 50_000 + n_users))
    rng = random.Random(7)
    statuses = ["pendente"] * 5 + ["rascunho"] * 2 + ["concluido", "cancelado", "bloqueado"]
    with app.engine.begin() as conn:
        conn.execute(
            insert(users),
            [
                {
                    "account_id": account.id,
                    "role": Role.ADMIN.value,
                    "name": f"Admin {i}",
                    "telegram_user_id": tid,
                    "language": "pt-BR",
                    "created_at": NOW,
                }
                for i, tid in enumerate(telegram_ids)
            ],
        )
        rows = []
        for i in range(n_envelopes):
            status = statuses[i % len(statuses)]
            title = (
                f"Contrato {rng.choice(['de locação', 'de serviço', 'social', 'de compra'])} {i}"
            )
            names = [f"Signatário {i}-A", f"Signatário {i}-B"]
            rows.append(
                {
                    "account_id": account.id,
                    "ref": f"ENV-{i:05d}",
                    "title": title,
                    "description": "",
                    "status": status,
                    "icp": False,
                    "ordered": False,
                    "quoted_credits": 2,
                    "created_by": None,
                    # Every envelope its own deadline (about 62 days spread), as in a real
                    # account: the renderer's caches of dates must not hit more than there.
                    "expires_at": NOW + timedelta(hours=6 + (i % 500) * 3, minutes=i // 500),
                    "sealed_at": None if status == "rascunho" else NOW - timedelta(days=1),
                    "tags": "[]",
                    "search_text": fold(" ".join([title, f"ENV-{i:05d}", *names])),
                    "version": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        conn.execute(insert(envelopes), rows)
        ids = conn.execute(select(envelopes.c.id, envelopes.c.status)).all()
        conn.execute(
            insert(documents),
            [{"envelope_id": e, "position": 0, "name": "contrato.pdf", "pages": 3} for e, _ in ids],
        )
        conn.execute(
            insert(signers),
            [
                {
                    "envelope_id": e,
                    "position": p,
                    "name": f"Signatário {e}-{p}",
                    "email": f"s{e}-{p}@example.com",
                    "phone": "+5511987654321",
                    "queue_order": 0,
                    "status": "pendente",
                    "signed_at": None,
                }
                for e, _ in ids
                for p in (0, 1)
            ],
        )
        first_signer = dict(
            conn.execute(
                select(signers.c.envelope_id, signers.c.id).where(signers.c.position == 0)
            ).all()
        )
    by_status: dict[str, list[int]] = {}
    for e, status in ids:
        by_status.setdefault(status, []).append(e)
    return app, telegram_ids, by_status, first_signer


class Meter:
    """Handler latency per update (group -1 to group 99) and the count of finished updates."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[str, float]] = {}
        self.latencies: list[float] = []
        self.by_kind: dict[str, list[float]] = {}
        self.done = 0
        self.event = asyncio.Event()
        self.target = 0

    async def begin(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.started[update.update_id] = (kind_of(update), time.perf_counter())

    async def end(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        began = self.started.pop(update.update_id, None)
        if began is not None:
            took = time.perf_counter() - began[1]
            self.latencies.append(took)
            self.by_kind.setdefault(began[0], []).append(took)
        self.done += 1
        if self.done >= self.target:
            self.event.set()

    def attach(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        application.add_handler(TypeHandler(Update, self.begin), group=-1)
        application.add_handler(TypeHandler(Update, self.end), group=99)


def kind_of(update: Update) -> str:
    """ "/envelopes", "ls", "env" (card), "env:seal", "rsc:sms", "ok" (confirm), ..."""
    if update.callback_query is None:
        return (update.effective_message.text or "") if update.effective_message else "?"
    parts = (update.callback_query.data or "").split(":")
    if parts[0] == "env" and len(parts) == 3:
        return f"env:{parts[2]}"
    if parts[0] == "rsc":
        return f"rsc:{parts[-1]}"
    return parts[0]


class Driven:
    """One bot under measurement: its `Application` polling its own fake Bot API."""

    def __init__(
        self,
        name: str,
        application: Application[Any, Any, Any, Any, Any, Any],
        api: FakeBotApi,
        server: BotApiServer | None,
    ) -> None:
        self.name = name
        self.application = application
        self.api = api
        self.server = server
        self.meter = Meter()
        self.meter.attach(application)
        self.elapsed = self.cpu = self.system = 0.0
        self.total = 0

    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(poll_interval=0, timeout=1)

    async def feed(self, make_round: Callable[[], int]) -> int:
        """Inject a round of updates and wait until every one was handled."""
        return await self.handled(self.inject(make_round))

    def inject(self, make_round: Callable[[], int]) -> int:
        """Queue a round of updates on the fake Bot API; nothing runs until the next await."""
        self.meter.event.clear()
        injected = make_round()
        self.meter.target = self.meter.done + injected
        return injected

    async def handled(self, injected: int) -> int:
        if injected:
            await asyncio.wait_for(self.meter.event.wait(), 120)
        return injected

    async def measure(self, make_round: Callable[[], int]) -> None:
        # The fake Bot API builds the round's updates (the users' side, Telegram's work)
        # before the window opens; in the window the bot polls, handles and answers them.
        injected = self.inject(make_round)
        # What earlier rounds left alive (the fake Bot API's transcripts and recorded
        # payloads: Telegram's state, not the bot's) is set aside, so that a full collection in
        # this window walks this bot's objects and not a heap the benchmark grew.
        gc.freeze()
        began, cpu_began, system_began = time.perf_counter(), time.process_time(), os.times().system
        await self.handled(injected)
        self.elapsed += time.perf_counter() - began
        self.cpu += time.process_time() - cpu_began
        self.system += os.times().system - system_began
        self.total += injected

    def forget_warm_up(self) -> None:
        self.meter.latencies.clear()
        self.meter.by_kind.clear()

    async def stop(self) -> None:
        self.api.close()
        assert self.application.updater is not None
        await self.application.updater.stop()
        await self.application.stop()
        await self.application.shutdown()
        if self.server:
            await self.server.stop()

    def figures(self) -> dict[str, Any]:
        if BREAKDOWN:
            for kind, values in sorted(self.meter.by_kind.items()):
                print(
                    f"    {self.name:>5} {kind:>12}: {len(values):5d} updates, "
                    f"p50 {statistics.median(values) * 1000:.2f} ms"
                )
        return _figures(
            self.name, self.total, self.elapsed, self.cpu, self.system, self.meter.latencies
        )


BREAKDOWN = False


def anchor(api: FakeBotApi, user: FakeUser) -> ChatMessage:
    return api.last_bot_message(user.id)


async def serve_fake(
    args: argparse.Namespace, api: FakeBotApi
) -> tuple[str, BotApiServer | None, dict[str, BaseRequest]]:
    """The fake Bot API for one bot: its base URL, its HTTP server (`--transport http`) and
    the requests python-telegram-bot reaches it with."""
    if args.transport == "inproc":
        requests: dict[str, BaseRequest] = {
            "request": InProcessRequest(api),
            "get_updates_request": InProcessRequest(api),
        }
        return "http://sandbox.invalid/bot", None, requests
    server = BotApiServer(api)
    await server.start()
    requests = {
        "request": HTTPXRequest(connection_pool_size=16),
        "get_updates_request": HTTPXRequest(read_timeout=5),
    }
    return server.base_url, server, requests


@dataclass(frozen=True)
class Workload:
    """The full stack's updates: a warm-up, then the measured rounds."""

    warm: list[Callable[[], int]]
    rounds: list[Callable[[], int]]
    app: Any


async def build_lacre(args: argparse.Namespace, url: str) -> tuple[Driven, Workload]:
    app, telegram_ids, by_status, first_signer = seed(url, args.envelopes, args.users)
    api = FakeBotApi(record_calls=False, keep_updates=True)
    base, server, requests = await serve_fake(args, api)
    # `--concurrent N`: python-telegram-bot runs up to N updates at once and the use cases go
    # to worker threads (the PostgreSQL set-up); by default one at a time, inline (SQLite's).
    concurrency: dict[str, Any] = (
        {"concurrent_updates": args.concurrent, "threaded": True} if args.concurrent else {}
    )
    application = build_application(app, base_url=base, token=api.token, **requests, **concurrency)
    people = [FakeUser(tid) for tid in telegram_ids]
    rng = random.Random(11)
    pending = list(by_status["pendente"])
    drafts = list(by_status["rascunho"])
    rng.shuffle(pending)
    rng.shuffle(drafts)
    every = [e for ids in by_status.values() for e in ids]
    per_round = max(args.updates // 4, 1)

    def first_lists() -> int:
        for person in people:
            api.send_text(person, "/envelopes")
        return len(people)

    def mixed(n: int = per_round) -> int:
        for _ in range(n):
            person = rng.choice(people)
            roll = rng.random()
            if roll < 0.15:
                api.send_text(person, "/envelopes")
            elif roll < 0.35:
                tab = rng.choice(["pen", "ras", "con", "ven", "blo"])
                api.tap(person, anchor(api, person), f"ls:{tab}:{rng.randrange(0, 50)}")
            elif roll < 0.70:
                api.tap(person, anchor(api, person), f"env:{rng.choice(every)}")
            elif roll < 0.85 and drafts:
                api.tap(person, anchor(api, person), f"env:{drafts.pop()}:seal")
            elif pending:
                env = pending.pop()
                channel = rng.choice(["email", "sms"])
                api.tap(person, anchor(api, person), f"rsc:{env}:{first_signer[env]}:{channel}")
        return n

    by_user = {}
    with app.uow(write=False) as uow:
        for tid in telegram_ids:
            user = uow.users.by_telegram(tid)
            assert user is not None
            by_user[user.id] = FakeUser(tid)

    def confirm_all() -> int:
        """Tap Confirmar on every open confirmation (seals and paid resends)."""
        with app.engine.connect() as conn:
            open_ones = conn.execute(
                select(confirmations.c.nonce, confirmations.c.user_id).where(
                    confirmations.c.used_at.is_(None)
                )
            ).all()
        for nonce, user_id in open_ones:
            person = by_user[user_id]
            api.tap(person, anchor(api, person), f"ok:{nonce}")
        return len(open_ones)

    # Every path once before measuring (both bots warm up on these payloads).
    warm = [first_lists, lambda: mixed(min(100, per_round)), confirm_all]
    rounds: list[Callable[[], int]] = [mixed, confirm_all, mixed, confirm_all, mixed, mixed]
    return Driven("lacre", application, api, server), Workload(warm, rounds, app)


async def build_echo(args: argparse.Namespace) -> Driven:
    api = FakeBotApi(record_calls=False)
    base, server, requests = await serve_fake(args, api)
    builder = ApplicationBuilder().token(api.token).base_url(base)
    for name, request in requests.items():
        builder = getattr(builder, name)(request)
    application = builder.build()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await context.bot.send_message(
            update.effective_chat.id, update.effective_message.text or ""
        )

    async def ack(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer()

    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.add_handler(CallbackQueryHandler(ack))
    return Driven("echo", application, api, server)


def replay(api: FakeBotApi, payloads: list[dict[str, Any]]) -> Callable[[], int]:
    def run() -> int:
        for payload in payloads:
            api.replay(payload)
        return len(payloads)

    return run


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """The full stack on a fresh database and the echo bot, measured in turns: each round of
    the full stack, then the echo bot on exactly the same payloads (callback queries carry the
    tapped message with its keyboard), so both meet the same phase of a shared machine."""
    # Every run formats its dates, times and numbers anew, as a new process would: each run
    # seeds the same envelopes, and what an earlier run formatted would flatter the next one.
    render.clear_caches()
    with tempfile.TemporaryDirectory() as tmp:
        lacre, work = await build_lacre(args, f"sqlite:///{Path(tmp) / 'bench.db'}")
        echo = await build_echo(args)
        # As `lacre run` does on a SQLite file (decision 0009).
        checkpoints = WalCheckpointer(work.app.engine)
        checkpoints.start()
        await lacre.start()
        await echo.start()
        try:
            for make_round in work.warm:
                mark = len(lacre.api.injected)
                await lacre.feed(make_round)
                await echo.feed(replay(echo.api, lacre.api.injected[mark:]))
            lacre.forget_warm_up()
            echo.forget_warm_up()
            # Both bots measure on a settled heap: a full collection over what the process
            # already holds (the seed above all) would land in one window and not the next.
            gc.collect()
            gc.freeze()
            for make_round in work.rounds:
                mark = len(lacre.api.injected)
                await lacre.measure(make_round)
                # Several passes: one takes a third of the full stack's time, and so short a
                # window swings with the machine.
                await echo.measure(replay(echo.api, lacre.api.injected[mark:] * args.echo_passes))
        finally:
            gc.unfreeze()
            await lacre.stop()
            await echo.stop()
            checkpoints.stop()
        with work.app.engine.connect() as conn:
            problems = audit(conn)
        work.app.engine.dispose()
    full = lacre.figures() | {"audit_violations": len(problems)}
    floor = echo.figures()
    ratio = full["updates_per_s"] / floor["updates_per_s"] if floor["updates_per_s"] else 0.0
    cpu_ratio = (
        floor["cpu_us_per_update"] / full["cpu_us_per_update"]
        if full["updates"] and floor["updates"]
        else 0.0
    )
    return {
        "pid": os.getpid(),
        "transport": args.transport,
        "envelopes": args.envelopes,
        "lacre": full,
        "echo": floor,
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
    }


def run_apart(args: argparse.Namespace) -> dict[str, Any]:
    """One run in a new Python process. Runs in one process do not measure alike: a process
    that has run a round is warmer for the full stack and heavier for the echo bot (its CPU per
    update rose 5-13% after the first run), which flattered the ratio of every run but the
    first."""
    options = ["--updates", str(args.updates), "--envelopes", str(args.envelopes)]
    options += ["--users", str(args.users), "--transport", args.transport]
    options += ["--echo-passes", str(args.echo_passes), "--concurrent", str(args.concurrent)]
    if args.breakdown:
        options.append("--breakdown")
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "run.json"
        subprocess.run(  # noqa: S603  # this script, its own options
            [sys.executable, __file__, *options, "--result-file", str(result)], check=True
        )
        found: dict[str, Any] = json.loads(result.read_text())
        return found


def _write(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result))


def _figures(
    name: str, total: int, elapsed: float, cpu: float, system: float, latencies: list[float]
) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "bot": name,
        "updates": total,
        "seconds": round(elapsed, 3),
        "updates_per_s": round(total / elapsed, 1) if elapsed else 0.0,
        # The process's CPU time per update: what the machine's other tenants disturb least.
        "cpu_us_per_update": round(cpu / total * 1e6, 1) if total else None,
        # Of which in the kernel (SQLite's file I/O and locks, the event loop's polling).
        "system_us_per_update": round(system / total * 1e6, 1) if total else None,
        "p50_ms": round(statistics.median(ordered) * 1000, 3) if ordered else None,
        "p99_ms": round(percentile(ordered, 99) * 1000, 3) if ordered else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=4000, help="updates per mixed batch x4")
    parser.add_argument("--envelopes", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--transport", choices=["inproc", "http"], default="inproc")
    parser.add_argument("--repeat", type=int, default=1, help="runs (the median is printed)")
    parser.add_argument(
        "--echo-passes", type=int, default=3, help="passes of the echo bot over the payloads"
    )
    parser.add_argument(
        "--concurrent", type=int, default=0, help="full stack: updates at once, in threads"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--breakdown", action="store_true", help="p50 per kind of update")
    parser.add_argument(
        "--same-process", action="store_true", help="--repeat: all runs in this one process"
    )
    parser.add_argument("--result-file", help=argparse.SUPPRESS)  # a run for --repeat
    args = parser.parse_args()
    global BREAKDOWN
    BREAKDOWN = args.breakdown
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.repeat > 1 and not args.same_process:
        runs = [run_apart(args) for _ in range(args.repeat)]
    else:
        runs = [await one_run(args) for _ in range(args.repeat)]
    if args.result_file:
        _write(args.result_file, runs[0])
        return
    median = {
        "lacre_updates_per_s": statistics.median(r["lacre"]["updates_per_s"] for r in runs),
        "echo_updates_per_s": statistics.median(r["echo"]["updates_per_s"] for r in runs),
        "ratio": statistics.median(r["ratio"] for r in runs),
        "cpu_ratio": statistics.median(r["cpu_ratio"] for r in runs),
    }
    if args.json:
        print(json.dumps({"runs": runs, "median": median}, indent=2))
        return
    print(f"transport {args.transport}, {args.envelopes} envelopes in one account, SQLite file")
    for i, result in enumerate(runs, 1):
        if args.repeat > 1:
            print(f"run {i} of {args.repeat}")
        for row in (result["lacre"], result["echo"]):
            print(
                f"{row['bot']:>6}: {row['updates']} updates in {row['seconds']} s = "
                f"{row['updates_per_s']} updates/s; handler p50 {row['p50_ms']} ms, "
                f"p99 {row['p99_ms']} ms; CPU {row['cpu_us_per_update']} µs/update"
                f" ({row['system_us_per_update']} in the kernel)"
            )
        print(
            f" ratio: lacre / echo = {result['ratio']:.1%} (by CPU time "
            f"{result['cpu_ratio']:.1%}); "
            f"ledger audit violations: {result['lacre']['audit_violations']}"
        )
    if args.repeat > 1:
        print(
            f"median of {args.repeat}: lacre {median['lacre_updates_per_s']} updates/s, "
            f"echo {median['echo_updates_per_s']} updates/s, ratio {median['ratio']:.1%} "
            f"(by CPU time {median['cpu_ratio']:.1%})"
        )


if __name__ == "__main__":
    asyncio.run(main())
