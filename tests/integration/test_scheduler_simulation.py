"""Seven simulated days, three scheduler processes on one PostgreSQL, clock jumps and restarts.

time-machine moves the wall clock every instance reads (the bootstrap's SystemClock); the three
instances have their own engines and event loops and tick at the same moments from three
threads, so their claims really race. The clock moves in 5-minute steps (the default tick is a
minute; 5 minutes still lands on every "just before quiet hours" moment), jumps back an hour,
forward an hour, and forward 72 hours; one instance is restarted around the renewal.

Expected outcomes are derived by hand from the policy (3 days, 1 day and 2 hours before;
quiet hours 20:00-08:00 in each account's zone) and written out below.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from core.accounts import Role
from core.ledger import PAID_REASONS, Reason
from core.notifications import Kind
from core.reminders import DAY, DEFAULT_QUIET, HOUR
from storage.audit import audit
from tests.support.builders import envelope_json, import_envelopes, linked_user
from tests.support.scheduler import Instance, SharedLog, as_utc, instance, rows

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # Monday 09:00 in São Paulo, 08:00 in Manaus
END = T0 + 7 * DAY
STEP = timedelta(minutes=5)
QUIET_TAIL = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)  # after the last event: hourly ticks
BACK_AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # tick, then the clock goes back an hour
SKIP_AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # the clock skips 15:00-16:00
LEAP_AT = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # the clock leaps 72 hours ahead
RENEWS_AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # inside the skipped hour (11:00 Manaus)
NIGHT_RENEWS_AT = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # midnight in São Paulo
EVENTS_AT = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)  # signed, cancelled, muted, credits
SP, MANAUS = ZoneInfo("America/Sao_Paulo"), ZoneInfo("America/Manaus")
D3, D1, H2 = (int(x.total_seconds()) for x in (3 * DAY, DAY, 2 * HOUR))


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11 if day >= 30 else 12, day, hour, minute, tzinfo=UTC)


# ref: (deadline, account) — deadlines chosen so each case below has one reason to exist.
ENVELOPES = {
    "SP-NORMAL": ("2026-12-06T18:00:00-03:00", "sp"),  # 3d and 1d fall in the leap: catch-up
    "SP-LATE": ("2026-12-02T23:00:00-03:00", "sp"),  # deadline inside quiet hours
    "SP-SIGNED": ("2026-12-03T15:00:00-03:00", "sp"),
    "SP-CANCEL": ("2026-12-03T15:00:00-03:00", "sp"),
    "SP-MUTE": ("2026-12-03T15:00:00-03:00", "sp"),
    "SP-MEMBER": ("2026-12-02T12:00:00-03:00", "sp"),  # 1d slot at the tick before the -1h jump
    "SP-REPLAY": ("2026-12-02T11:30:00-03:00", "sp"),  # 1d slot inside the replayed hour
    "SP-SKIP": ("2026-12-03T12:30:00-03:00", "sp"),  # 1d slot inside the skipped hour
    "SP-EXPIRE": ("2026-12-04T09:00:00-03:00", "sp"),  # expires during the leap
    "MN-EARLY": ("2026-12-03T07:00:00-04:00", "mn"),  # Manaus: deadline inside quiet hours
}

# (ref, offset) -> (state, when it went out)
EXPECTED_NUDGES: dict[tuple[str, int], tuple[str, datetime | None]] = {
    ("SP-NORMAL", D3): ("superseded", None),
    ("SP-NORMAL", D1): ("sent", utc(6, 11)),  # after the leap, at 08:00 São Paulo
    ("SP-NORMAL", H2): ("sent", utc(6, 19)),
    ("SP-LATE", D1): ("sent", utc(2, 11)),  # 23:00 the day before is quiet: 08:00
    ("SP-LATE", H2): ("sent", utc(2, 22, 55)),  # 19:55, just before the quiet hours
    ("SP-SIGNED", D3): ("sent", utc(30, 18)),
    ("SP-CANCEL", D3): ("sent", utc(30, 18)),
    ("SP-MUTE", D3): ("sent", utc(30, 18)),
    ("SP-MEMBER", D1): ("sent", utc(1, 15)),
    ("SP-MEMBER", H2): ("sent", utc(2, 13)),
    ("SP-REPLAY", D1): ("sent", utc(1, 14, 30)),
    ("SP-REPLAY", H2): ("sent", utc(2, 12, 30)),
    ("SP-SKIP", D3): ("sent", utc(30, 15, 30)),
    ("SP-SKIP", D1): ("sent", utc(2, 16)),  # its 15:30 was skipped: caught up once
    ("SP-EXPIRE", D3): ("sent", utc(1, 12)),
    ("MN-EARLY", D3): ("sent", utc(30, 12)),  # due 07:00 in Manaus, quiet: 08:00
    ("MN-EARLY", D1): ("sent", utc(2, 12)),  # 08:00 in Manaus
    ("MN-EARLY", H2): ("sent", utc(2, 23, 55)),  # 19:55 in Manaus
}

# ref -> (state, when its people were told)
EXPECTED_EXPIRIES = {
    "SP-REPLAY": ("sent", utc(2, 14, 30)),
    "SP-MEMBER": ("sent", utc(2, 16)),  # expired inside the skipped hour
    "SP-LATE": ("sent", utc(6, 11)),  # expired at 23:00, told after the night (and the leap)
    "SP-MUTE": ("skipped", None),
    "SP-SKIP": ("sent", utc(6, 11)),
    "SP-EXPIRE": ("sent", utc(6, 11)),
    "MN-EARLY": ("sent", utc(6, 12)),  # 08:00 in Manaus
    "SP-NORMAL": ("sent", utc(6, 21)),
}


@dataclass
class Loop:
    """An instance's own event loop in its own thread, as a process would have."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @classmethod
    def start(cls) -> Loop:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        return cls(loop, thread)

    def run(self, inst: Instance) -> None:
        report = asyncio.run_coroutine_threadsafe(inst.tick(), self.loop).result(timeout=120)
        assert report.errors == [], report.errors

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def timeline() -> Iterator[datetime]:
    """Tick moments: 5-minute steps, with the -1 h, +1 h and +72 h jumps; hourly at the end,
    when nothing is left to send (which is then checked)."""
    now, replayed = T0, False
    while now <= END:
        if now == SKIP_AT:
            now += HOUR
        if now == LEAP_AT:
            now += 72 * HOUR
        yield now
        if now == BACK_AT and not replayed:
            replayed, now = True, now - HOUR
        now += STEP if now < QUIET_TAIL else HOUR


def test_seven_days_three_processes_every_slot_exactly_once(postgres_url: str) -> None:
    log = SharedLog()
    with time_machine.travel(T0, tick=False) as traveller:
        names = ("a", "b", "c")
        insts = {n: instance(postgres_url, log.for_instance(n), name=n) for n in names}
        loops = {n: Loop.start() for n in names}
        app = insts["a"].app
        world = seed(app, insts["a"])
        entries_after_seed = rows(app, "SELECT max(id) FROM ledger_entries")[0][0]
        try:
            with ThreadPoolExecutor(3) as pool:
                for moment in timeline():
                    traveller.move_to(moment)
                    act(moment, app, insts["a"], world)
                    if moment in (RENEWS_AT - STEP, RENEWS_AT + HOUR + STEP):
                        insts["b"].close()  # a restart: new engine, new use cases, no memory
                        insts["b"] = instance(postgres_url, log.for_instance("b"), name="b")
                    list(pool.map(lambda n: loops[n].run(insts[n]), names))
        finally:
            for n in names:
                loops[n].close()
                insts[n].close()
    check_nudges(app, world, log)
    check_expiries(app, world)
    check_messages(app, world, log)
    check_renewal_and_alerts(app, world, log)
    check_resends(app, world)
    written = rows(app, "SELECT reason FROM ledger_entries WHERE id > :i", i=entries_after_seed)
    assert not {Reason(r[0]) for r in written} & PAID_REASONS
    with app.engine.connect() as conn:
        assert audit(conn) == []


# -- the world -----------------------------------------------------------------------------------
@dataclass
class World:
    ids: dict[str, int]
    ref_of: dict[int, str]
    sp_admin: Any
    sp_member: Any
    mn_admin: Any
    night_admin: Any
    sp_account: int
    mn_account: int
    night_account: int


def seed(app: Any, inst: Instance) -> World:
    sp = app.lacre.create_account("Imobiliária Sol", "essencial", "America/Sao_Paulo")
    mn = app.lacre.create_account("Cartório Norte", "pessoa-fisica", "America/Manaus")
    night = app.lacre.create_account("Dra. Noemi", "pessoa-fisica", "America/Sao_Paulo")
    sp_admin = linked_user(app, sp.id, Role.ADMIN, "Ana")
    sp_member = linked_user(app, sp.id, Role.MEMBER, "Bruno")
    mn_admin = linked_user(app, mn.id, Role.ADMIN, "Nara")
    night_admin = linked_user(app, night.id, Role.ADMIN, "Noemi")
    ids: dict[str, int] = {}
    for ref, (deadline, who) in ENVELOPES.items():
        account = sp.id if who == "sp" else mn.id
        extra = {"created_by": sp_member.id} if ref == "SP-MEMBER" else {}
        item = envelope_json(ref, status="pendente", expires_at=deadline, **extra)
        ids.update(import_envelopes(app, account, item))
    ids.update(import_envelopes(app, sp.id, envelope_json("SP-DRAFT", credits=45)))
    with app.uow() as uow:
        uow.accounts.set_plan(mn.id, "pessoa-fisica", RENEWS_AT)
        uow.accounts.set_plan(night.id, "pessoa-fisica", NIGHT_RENEWS_AT)
        uow.commit()
    inst.reminders.update(sp_admin.id, lambda s: replace(s, auto_resend_days=1))
    return World(
        ids,
        {v: k for k, v in ids.items()},
        sp_admin,
        sp_member,
        mn_admin,
        night_admin,
        sp.id,
        mn.id,
        night.id,
    )


def act(moment: datetime, app: Any, inst: Instance, world: World) -> None:
    """What people do mid-way, at fixed moments."""
    if moment == EVENTS_AT:
        for email in ("maria@example.com", "joao@example.com"):
            app.lacre.record_signature("SP-SIGNED", email, world.sp_account)
        app.lacre.cancel(world.sp_admin.id, world.ids["SP-CANCEL"])
        assert inst.reminders.mute(world.sp_admin.id, world.ids["SP-MUTE"]) is True
        app.lacre.grant(world.sp_account, credits=20)  # 50 now cover the 45 of the draft
    if moment == EVENTS_AT + HOUR:
        world.ids.update(
            import_envelopes(app, world.sp_account, envelope_json("SP-DRAFT-2", credits=10))
        )


# -- the checks ----------------------------------------------------------------------------------
def check_nudges(app: Any, world: World, log: SharedLog) -> None:
    found = {
        (world.ref_of[r[0]], r[1]): (r[2], as_utc(r[3]) if r[2] == "sent" else None)
        for r in rows(
            app,
            "SELECT envelope_id, offset_seconds, state, claimed_at FROM reminder_nudges",
        )
    }
    assert found == EXPECTED_NUDGES
    assert len(rows(app, "SELECT id FROM reminder_nudges")) == len(EXPECTED_NUDGES)


def check_expiries(app: Any, world: World) -> None:
    found = {
        world.ref_of[r[0]]: (r[1], as_utc(r[2]) if r[1] == "sent" else None)
        for r in rows(app, "SELECT envelope_id, state, created_at FROM envelope_expiries")
    }
    assert found == EXPECTED_EXPIRIES


def check_messages(app: Any, world: World, log: SharedLog) -> None:
    zones = {
        world.sp_admin.telegram_user_id: SP,
        world.sp_member.telegram_user_id: SP,
        world.mn_admin.telegram_user_id: MANAUS,
        world.night_admin.telegram_user_id: SP,
    }
    for sent in log.log:  # nothing ever goes out inside the recipient's quiet hours
        assert DEFAULT_QUIET.window(sent.at, zones[sent.chat_id]) is None, sent
    nudges = [s for s in log.log if "Prazo" in s.html]
    per_envelope = Counter(
        (world.ref_of[int(d.split(":")[1])], s.chat_id)
        for s in nudges
        for _, d in s.buttons
        if d.startswith("env:")
    )
    sent_slots = Counter(ref for (ref, _), (state, _) in EXPECTED_NUDGES.items() if state == "sent")
    expected: Counter[tuple[str, int]] = Counter()
    for ref, count in sent_slots.items():
        chats = (
            [world.sp_admin.telegram_user_id]
            if ref.startswith("SP")
            else [world.mn_admin.telegram_user_id]
        )
        if ref == "SP-MEMBER":
            chats.append(world.sp_member.telegram_user_id)
        for chat in chats:
            expected[(ref, chat)] = count
    assert per_envelope == expected  # one message per slot and recipient, whoever claimed it
    assert len({s.instance for s in nudges}) > 1  # the work really was shared
    expired = Counter(
        world.ref_of[int(d.split(":")[1])]
        for s in log.log
        if "expirou" in s.html
        for _, d in s.buttons
    )
    told = {
        ref: 2 if ref == "SP-MEMBER" else 1
        for ref, (st, _) in EXPECTED_EXPIRIES.items()
        if st == "sent"
    }
    assert expired == Counter(told)


def check_renewal_and_alerts(app: Any, world: World, log: SharedLog) -> None:
    renewal = [s for s in log.log if "renovado" in s.html]
    assert [(s.chat_id, s.at) for s in renewal] == [
        (world.night_admin.telegram_user_id, utc(2, 11)),  # renewed at 00:00, told at 08:00
        (world.mn_admin.telegram_user_id, RENEWS_AT + HOUR),
    ]
    for account, renews_at, done_at in (
        (world.mn_account, RENEWS_AT, RENEWS_AT + HOUR),  # the first tick after the skip
        (world.night_account, NIGHT_RENEWS_AT, NIGHT_RENEWS_AT),  # the money moves at midnight
    ):
        found = rows(
            app,
            "SELECT idempotency_key, created_at FROM ledger_entries WHERE account_id = :a "
            "AND reason IN ('plan_grant', 'plan_expiry') ORDER BY id",
            a=account,
        )
        keys = [r[0] for r in found]
        cycle = f"{renews_at:%Y-%m-%d}"
        assert keys[-2:] == [f"expiry:{account}:{cycle}", f"renew:{account}:{cycle}"]
        assert sum(k.startswith("renew:") for k in keys) == 1
        assert {as_utc(r[1]) for r in found[-2:]} == {done_at}
    states = rows(app, "SELECT state, recipients FROM plan_renewals ORDER BY cycle_at")
    assert [tuple(r) for r in states] == [("sent", 1), ("sent", 1)]
    alerts = [(s.chat_id, s.at) for s in log.log if "Créditos insuficientes" in s.html]
    assert alerts == [
        (world.sp_admin.telegram_user_id, T0),
        (world.sp_admin.telegram_user_id, EVENTS_AT + HOUR),
    ]


def check_resends(app: Any, world: World) -> None:
    auto = rows(
        app,
        "SELECT n.envelope_id, n.idempotency_key, n.cost, n.created_at, e.expires_at "
        "FROM notifications n JOIN envelopes e ON e.id = n.envelope_id WHERE n.kind = :k",
        k=Kind.AUTO_RESEND.value,
    )
    assert auto and all(r[2] == 0 for r in auto)
    assert all(as_utc(r[3]) < as_utc(r[4]) for r in auto)  # only before the deadline
    rounds: dict[str, set[int]] = {}
    for r in auto:
        rounds.setdefault(world.ref_of[r[0]], set()).add(int(r[1].split(":")[2]))
    assert all(len(k) <= 3 for k in rounds.values())
    for ref in ("SP-SIGNED", "SP-CANCEL", "SP-MUTE"):  # the round 5 minutes before, no more
        assert rounds.get(ref) == {1}, ref
    assert rounds["SP-NORMAL"] == {1, 2, 3}  # the third caught up after the leap, once
    assert "MN-EARLY" not in rounds  # Manaus did not turn automatic resends on
