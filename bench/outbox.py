"""Outbox benchmark: sends per second to the fake servers, and confirmation → provider latency.

Run from the repository root:

    python bench/outbox.py                    # SQLite and PostgreSQL
    python bench/outbox.py --n 500 --only postgres

For each database it measures, with one outbox worker (asyncio task, default concurrency):
- drain: a backlog already queued, then the worker starts; sends per second until the last
  one is out: the `n` free e-mails of the seals (real SMTP server, aiosmtpd), then `n` SMS
  confirmations (fake Twilio REST API over HTTP, through the real twilio client);
- live: `n` SMS confirmations made by a user thread at `--rate` per second while the worker
  runs (woken after each confirmation, as the bot does); time from the confirmation's commit
  to the create request arriving at the fake Twilio, p50 and p99.
Temporary SQLite file / PostgreSQL database (dropped afterwards; admin URL from
TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import stamina
from _databases import temporary_postgres, temporary_sqlite
from _timing import percentile
from aiosmtpd.controller import Controller
from sqlalchemy import text

from bot.bootstrap import App, SystemClock, bootstrap
from bot.delivery.email import SmtpEmailSender
from bot.delivery.twilio_sender import TwilioSender
from bot.delivery.worker import OutboxWorker
from bot.sandbox.twilio_api import FakeTwilio, TwilioApiServer
from bot.settings import Settings
from core.accounts import Role
from core.importing import parse_import
from core.notifications import Channel, DeliveryStatus
from storage import migrate
from storage.db import make_engine
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory

SIGNERS_PER_ENVELOPE = 10
_telegram_ids = itertools.count(10_000)


class Sink:
    """aiosmtpd handler that only counts."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


@dataclass
class Targets:
    """Signers to send to: (envelope id, signer id, E.164 phone)."""

    admin_id: int
    signers: list[tuple[int, int, str]]


def prepare(app: App, count: int, tag: str) -> Targets:
    """An account with enough credits and sealed envelopes holding `count` mobile signers."""
    account = app.lacre.create_account("Bench", "empresarial")
    admin = app.lacre.link(
        app.lacre.create_link_token(account.id, Role.ADMIN), next(_telegram_ids), "Bench"
    )
    app.lacre.grant(
        account.id,
        credits=10 * count,
        notification_credits=2 * count,
        idempotency_key=f"bench:{tag}",
    )
    envelopes = []
    for e in range(-(-count // SIGNERS_PER_ENVELOPE)):
        signers = []
        for s in range(SIGNERS_PER_ENVELOPE):
            i = e * SIGNERS_PER_ENVELOPE + s
            signers.append(
                {
                    "name": f"Signatário {i}",
                    "email": f"s{i}@example.com",
                    "phone": f"(11) 97{i // 10000:03d}-{i % 10000:04d}",
                    "order": 0,
                    "status": "pendente",
                }
            )
        envelopes.append(
            {
                "ref": f"{tag}-{e}",
                "title": "Contrato de locação",
                "status": "rascunho",
                "expires_at": "2099-12-01T18:00:00-03:00",
                "credits": 1,
                "documents": [{"name": "contrato.pdf", "pages": 1}],
                "signers": signers,
            }
        )
    app.lacre.import_envelopes(
        parse_import({"account_id": account.id, "envelopes": envelopes}, app.lacre.phones)
    )
    found: list[tuple[int, int, str]] = []
    for e in range(len(envelopes)):
        with app.uow(write=False) as uow:
            env = uow.envelopes.get_by_ref(account.id, f"{tag}-{e}")
        assert env is not None and env.id is not None
        app.lacre.seal(admin.id, env.id)
        for signer in env.signers:
            assert signer.id is not None and signer.phone is not None
            found.append((env.id, signer.id, signer.phone))
    return Targets(admin.id, found[:count])


def confirm(app: App, targets: Targets, key: str) -> dict[int, float]:
    """One SMS confirmation per target, in this thread; {notification id: commit time}."""
    at: dict[int, float] = {}
    for env_id, signer_id, _phone in targets.signers:
        sent = app.lacre.request_send(
            targets.admin_id, env_id, signer_id, Channel.SMS, f"{key}:{signer_id}"
        )
        at[sent.notification.id] = time.perf_counter()
    return at


def count_status(app: App, ids: list[int], status: DeliveryStatus) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM notifications WHERE status = :s "
                    "AND id BETWEEN :low AND :high"
                ),
                {"s": status.value, "low": min(ids), "high": max(ids)},
            ).scalar_one()
        )


async def wait_until(predicate: Any, within: float) -> None:
    """Poll gently: the poller shares the process (and its GIL) with the worker."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain in time")
        await asyncio.sleep(0.1)


async def measure(url: str, n: int, label: str, rate: float) -> list[str]:
    migrate.upgrade(url)
    settings = Settings(
        environment="test",
        database_url=url,
        daily_paid_send_cap=10 * n,
        notification_cooldown_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = bootstrap(settings, engine=make_engine(url, pool_size=16), clock=SystemClock())
    twilio = TwilioApiServer(FakeTwilio())
    await twilio.start()
    sink = Sink()
    port = _free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    sender = TwilioSender(
        account_sid=twilio.api.account_sid,
        auth_token=twilio.api.auth_token,
        status_callback_url="https://lacre.example.com/twilio/status",
        sms_from="+15005550006",
        api_base_url=twilio.base_url,
    )
    email = SmtpEmailSender(host="127.0.0.1", port=port, sender="Lacre <bench@lacre.local>")
    worker = OutboxWorker(
        outbox=SqlOutbox(SqlUnitOfWorkFactory(app.engine)),
        lacre=app.lacre,
        clock=app.clock,
        email=email,
        messages=sender,
    )
    lines = []
    try:
        # Drain: a backlog is queued, then the worker starts; first the seals' e-mails
        # (aiosmtpd), then n SMS confirmations (fake Twilio), each timed on its own.
        drain = await asyncio.to_thread(prepare, app, n, f"D{uuid.uuid4().hex[:6]}")
        emails = len(drain.signers)
        t0 = time.perf_counter()
        await worker.start()
        await wait_until(lambda: sink.count >= emails, within=600)
        email_seconds = time.perf_counter() - t0
        await worker.stop()
        queued = list(await asyncio.to_thread(confirm, app, drain, "drain"))
        t0 = time.perf_counter()
        await worker.start()
        await wait_until(
            lambda: count_status(app, queued, DeliveryStatus.SENT) == len(queued), within=600
        )
        sms_seconds = time.perf_counter() - t0
        await worker.stop()
        lines.append(
            f"  {label:<10} drain  {len(queued)} SMS: {len(queued) / sms_seconds:6.0f} sends/s"
            f"   |  {emails} e-mails: {emails / email_seconds:6.0f} sends/s"
        )

        # Live: confirmations one after another while the worker runs, woken each time.
        live = await asyncio.to_thread(prepare, app, n, f"L{uuid.uuid4().hex[:6]}")
        sink.count = 0
        await worker.start()
        # The seals' e-mails go first, so that only the SMS are in flight while measured.
        await wait_until(lambda: sink.count >= len(live.signers), within=600)
        loop = asyncio.get_running_loop()
        phone_of = {signer_id: phone for _e, signer_id, phone in live.signers}
        arrived_before = len(twilio.api.creates())

        def confirm_and_wake() -> dict[int, float]:
            at: dict[int, float] = {}
            start = time.perf_counter()
            for k, (env_id, signer_id, _phone) in enumerate(live.signers):
                # Paced like a busy bot, not as fast as possible: a queue that only grows
                # would measure the backlog, not the path from a confirmation to Twilio.
                time.sleep(max(0.0, start + k / rate - time.perf_counter()))
                sent = app.lacre.request_send(
                    live.admin_id, env_id, signer_id, Channel.SMS, f"live:{signer_id}"
                )
                at[sent.notification.id] = time.perf_counter()
                loop.call_soon_threadsafe(worker.wake)
            return at

        confirmed = await asyncio.to_thread(confirm_and_wake)
        await wait_until(
            lambda: count_status(app, list(confirmed), DeliveryStatus.SENT) == len(confirmed),
            within=600,
        )
        await worker.stop()
        arrival = {
            r.params["To"]: r.at for r in twilio.api.creates()[arrived_before:] if r.status == 201
        }
        with app.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, signer_id FROM notifications WHERE channel = 'sms'")
            ).all()
        signer_of = {r.id: r.signer_id for r in rows}
        latencies = [
            arrival[phone_of[signer_of[nid]]] - committed for nid, committed in confirmed.items()
        ]
        lines.append(
            f"  {label:<10} live   {len(latencies)} SMS at {rate:.0f}/s: confirmation -> Twilio "
            f"p50 {percentile(latencies, 50) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 99) * 1000:6.1f} ms"
        )
    finally:
        await worker.stop()
        await sender.close()
        smtp.stop()
        await twilio.stop()
        app.engine.dispose()
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="SMS per measured run")
    parser.add_argument("--rate", type=float, default=20, help="live confirmations per second")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one database")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    stamina.set_active(False)  # the fake never asks for a retry; keep runs comparable
    print(f"Outbox, n={args.n}, worker concurrency 8, {os.cpu_count()} CPUs")
    if args.only != "postgres":
        with temporary_sqlite() as url:
            for line in asyncio.run(measure(url, args.n, "SQLite", args.rate)):
                print(line)
    if args.only != "sqlite":
        with temporary_postgres() as url:
            for line in asyncio.run(measure(url, args.n, "PostgreSQL", args.rate)):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
