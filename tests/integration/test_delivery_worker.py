"""The outbox worker: leases, crashes, restarts, several processes, graceful stop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.bootstrap import App, bootstrap
from bot.delivery.twilio_sender import TwilioSender
from bot.delivery.worker import OutboxWorker
from bot.sandbox.twilio_api import TwilioApiServer
from core.clock import FixedClock
from core.delivery import DeliveryPolicy
from core.notifications import Channel, DeliveryStatus, Notification
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import make_settings
from tests.support.builders import envelope_json, import_envelopes, seed_account
from tests.support.delivery import (
    Owner,
    assert_audit_clean,
    no_retry_waits,
    refunds,
    row,
    sealed_envelope,
    twilio,
    twilio_sender,
    worker,
)

__all__ = ["no_retry_waits", "twilio"]  # fixtures used by name

ROOT = Path(__file__).resolve().parents[2]
POLICY = DeliveryPolicy()


async def _process(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.outbox_process",
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(60):
        return (await process.stdout.readline()).decode().strip()


def _sms(app: App) -> tuple[int, int]:
    """A sealed envelope and one queued paid SMS to Maria: (account id, row id)."""
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    return sealed.seeded.account.id, sent.notification.id


async def test_a_worker_killed_between_claim_and_provider_call_sends_exactly_once_after_restart(
    app: App, twilio: TwilioApiServer, clock: FixedClock
) -> None:
    _account, row_id = _sms(app)
    doomed = await _process(
        "claim", "--database-url", app.settings.database_url, "--at", clock.now().isoformat()
    )
    assert json.loads(await _line(doomed)) == [row_id]
    doomed.kill()  # SIGKILL: no cleanup of any kind
    await doomed.wait()
    assert row(app, row_id).status is DeliveryStatus.QUEUED

    sender = twilio_sender(twilio, "https://lacre.example.com")
    restarted = worker(app, messages=sender)
    try:
        await restarted.run_once()
        assert twilio.api.creates() == []  # the dead worker's lease still holds
        clock.advance(POLICY.claim_lease + timedelta(seconds=1))
        await restarted.run_once()
        await restarted.run_once()
        clock.advance(timedelta(hours=1))  # before the overdue-status lookup of a `sent` row
        await restarted.run_once()
    finally:
        await sender.close()

    assert len(twilio.api.creates()) == 1
    after = row(app, row_id)
    assert after.status is DeliveryStatus.SENT
    assert after.attempts == 2  # the dead claim, then the send
    assert_audit_clean(app)


async def test_a_worker_that_died_after_marking_sending_never_resends_and_refunds_at_last(
    app: App, twilio: TwilioApiServer, clock: FixedClock
) -> None:
    account_id, row_id = _sms(app)
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))
    [claimed] = outbox.claim_due(
        clock.now(), limit=10, lease=POLICY.claim_lease, channels=[Channel.SMS]
    )
    assert outbox.mark_sending([(row_id, claimed.attempts)], clock.now(), POLICY.send_lease)
    # ... and the process died before (or while) calling Twilio: nobody knows which.
    owner = Owner()
    sender = twilio_sender(twilio, "https://lacre.example.com")
    restarted = worker(app, messages=sender, messenger=owner)
    try:
        await restarted.run_once()
        assert row(app, row_id).status is DeliveryStatus.SENDING
        clock.advance(POLICY.send_lease + timedelta(seconds=1))
        await restarted.run_once()
        assert row(app, row_id).status is DeliveryStatus.UNKNOWN
        for _ in range(12):
            clock.advance(timedelta(minutes=10))
            await restarted.run_once()
    finally:
        await sender.close()

    assert twilio.api.creates() == []
    lookups = [r for r in twilio.api.requests if r.method == "GET"]
    assert len(lookups) >= 3
    after = row(app, row_id)
    assert after.status is DeliveryStatus.FAILED
    assert refunds(app, row_id) == 1
    assert app.lacre.balances(account_id).notification_credits == 5
    [notice] = owner.sent
    assert "não foi possível confirmar o envio" in notice[1]
    assert_audit_clean(app)


async def test_a_claim_whose_lease_expired_and_was_taken_again_cannot_be_sent(
    app: App, clock: FixedClock
) -> None:
    _account, row_id = _sms(app)
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))

    def claim() -> list[Notification]:
        return outbox.claim_due(
            clock.now(), limit=1, lease=POLICY.claim_lease, channels=[Channel.SMS]
        )

    [slow] = claim()
    assert claim() == []
    clock.advance(POLICY.claim_lease + timedelta(seconds=1))
    [fast] = claim()

    def mark(attempt: int) -> set[int]:
        return outbox.mark_sending([(row_id, attempt)], clock.now(), POLICY.send_lease)

    assert mark(slow.attempts) == set()
    assert mark(fast.attempts) == {row_id}
    assert mark(fast.attempts) == set()
    assert row(app, row_id).status is DeliveryStatus.SENDING
    assert_audit_clean(app)


async def test_a_claim_takes_no_more_rows_than_asked_for(app: App, clock: FixedClock) -> None:
    sealed = sealed_envelope(app)  # two e-mails queued by the seal
    app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))
    every = [Channel.EMAIL, Channel.SMS]

    first = outbox.claim_due(clock.now(), limit=2, lease=POLICY.claim_lease, channels=every)
    second = outbox.claim_due(clock.now(), limit=2, lease=POLICY.claim_lease, channels=every)
    third = outbox.claim_due(clock.now(), limit=2, lease=POLICY.claim_lease, channels=every)

    assert [len(first), len(second), len(third)] == [2, 1, 0]
    assert {n.id for n in first}.isdisjoint({n.id for n in second})
    assert_audit_clean(app)


@pytest.fixture
def busy_postgres_app(postgres_url: str, clock: FixedClock) -> Iterator[App]:
    built = bootstrap(make_settings(postgres_url, daily_paid_send_cap=1000), clock=clock)
    yield built
    built.engine.dispose()


async def test_two_processes_on_one_postgresql_never_send_a_row_twice(
    busy_postgres_app: App, twilio: TwilioApiServer, clock: FixedClock
) -> None:
    app = busy_postgres_app
    seeded = seed_account(app, credits=200, notification_credits=100)
    envelopes = [
        envelope_json(
            ref=f"ENV-{i:04d}",
            signers=[
                {
                    "name": f"Signatário {i}",
                    "email": f"s{i}@example.com",
                    "phone": f"(11) 98765-{i:04d}",
                    "order": 0,
                    "status": "pendente",
                }
            ],
        )
        for i in range(40)
    ]
    ids = import_envelopes(app, seeded.account.id, *envelopes)
    rows: dict[str, int] = {}
    for i, env_id in enumerate(ids.values()):
        app.lacre.seal(seeded.admin.id, env_id)
        signer = app.lacre.envelope(seeded.admin.id, env_id).signers[0]
        assert signer.id is not None and signer.phone is not None
        sent = app.lacre.request_send(seeded.admin.id, env_id, signer.id, Channel.SMS, f"t{i}")
        rows[signer.phone] = sent.notification.id
    twilio.api.latency = 0.02  # keep both processes busy at the same time

    common = ("--database-url", app.settings.database_url, "--at", clock.now().isoformat())
    workers = [await _process("drain", *common, "--twilio-url", twilio.base_url) for _ in range(2)]
    for w in workers:
        assert await _line(w) == "ready"
    for w in workers:
        assert w.stdin is not None
        w.stdin.write(b"go\n")
        await w.stdin.drain()
    counts = [json.loads(await _line(w))["processed"] for w in workers]
    for w in workers:
        assert await w.wait() == 0

    creates = twilio.api.creates()
    assert len(creates) == 40
    assert sorted(c.params["To"] for c in creates) == sorted(rows)
    assert sum(counts) == 40 and min(counts) > 0, counts
    sids = set()
    for row_id in rows.values():
        after = row(app, row_id)
        assert after.status is DeliveryStatus.SENT and after.attempts == 1
        sids.add(after.provider_id)
    assert len(sids) == 40
    assert_audit_clean(app)


async def test_the_worker_task_sends_when_woken_and_stops_after_its_send_in_flight(
    app: App, twilio: TwilioApiServer
) -> None:
    _account, row_id = _sms(app)
    twilio.api.hang_after_create()
    sender = twilio_sender(twilio, "https://lacre.example.com", timeout=10)
    task_worker = worker(app, messages=sender)
    task_worker.poll_seconds = 60  # only a wake-up makes it look
    try:
        await task_worker.start()
        task_worker.wake()
        await twilio.api.wait_for(lambda: twilio.api.messages)
        stopping = asyncio.create_task(task_worker.stop(grace=10))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the answer of the create in flight
        twilio.api.release()
        await stopping
    finally:
        await sender.close()

    after = row(app, row_id)
    assert after.status is DeliveryStatus.SENT
    assert len(twilio.api.creates()) == 1
    assert_audit_clean(app)


async def _sent_sms(
    app: App, twilio: TwilioApiServer, owner: Owner
) -> tuple[int, Notification, OutboxWorker, TwilioSender]:
    """A paid SMS that Twilio accepted; its status callbacks never reach Lacre."""
    account_id, row_id = _sms(app)
    sender = twilio_sender(twilio, "https://lacre.example.com")
    running = worker(app, messages=sender, messenger=owner)
    await running.run_once()
    sent = row(app, row_id)
    assert sent.status is DeliveryStatus.SENT and sent.provider_id is not None
    return account_id, sent, running, sender


def _lookups(twilio: TwilioApiServer) -> int:
    return sum(1 for r in twilio.api.requests if r.method == "GET")


@pytest.mark.parametrize(
    ("status", "code", "final", "refunded"),
    [
        ("failed", 30005, DeliveryStatus.FAILED, 1),  # Twilio bills nothing: credit back
        ("undelivered", 30003, DeliveryStatus.FAILED, 0),  # the carrier billed the attempt
        ("delivered", None, DeliveryStatus.DELIVERED, 0),
    ],
)
async def test_a_sent_sms_whose_callback_never_came_is_looked_up_and_settled(
    app: App,
    twilio: TwilioApiServer,
    clock: FixedClock,
    status: str,
    code: int | None,
    final: DeliveryStatus,
    refunded: int,
) -> None:
    owner = Owner()
    account_id, sent, running, sender = await _sent_sms(app, twilio, owner)
    assert sent.provider_id is not None
    await twilio.api.progress(sent.provider_id, status, code, callback=False)
    try:
        clock.advance(timedelta(hours=1))
        await running.run_once()
        assert _lookups(twilio) == 0  # callbacks usually come within minutes: not yet
        clock.advance(timedelta(hours=1, seconds=1))
        await running.run_once()
        assert _lookups(twilio) == 1
        clock.advance(timedelta(hours=12))
        await running.run_once()
    finally:
        await sender.close()
    after = row(app, sent.id)
    assert after.status is final
    assert _lookups(twilio) == 1  # settled: never looked up again
    assert refunds(app, sent.id) == refunded
    assert app.lacre.balances(account_id).notification_credits == 4 + refunded
    assert len(owner.sent) == (1 if final is DeliveryStatus.FAILED else 0)
    assert_audit_clean(app)


async def test_a_sent_sms_without_a_final_status_is_looked_up_for_three_days_then_left_sent(
    app: App, twilio: TwilioApiServer, clock: FixedClock
) -> None:
    owner = Owner()
    account_id, sent, running, sender = await _sent_sms(app, twilio, owner)
    try:
        for _ in range(20):  # five days, every six hours
            clock.advance(timedelta(hours=6))
            await running.run_once()
    finally:
        await sender.close()
    after = row(app, sent.id)
    assert after.status is DeliveryStatus.SENT
    assert after.next_attempt_at is None  # no more lookups
    # At 6 h (the first pass after the 2 h mark), then every 6 h up to 72 h: 12 lookups.
    assert _lookups(twilio) == 12
    assert refunds(app, sent.id) == 0 and owner.sent == []
    assert app.lacre.balances(account_id).notification_credits == 4
    assert_audit_clean(app)
