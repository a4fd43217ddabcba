"""Renewal and low-balance notices wait for the end of the account's quiet hours.

The money moves at its moment (lapse, grant, next date at the renewal's tick); only the
Telegram message waits, and it goes once, at the first tick at or after the end of the quiet
hours in the account's own zone, whatever the restarts and the other scheduler processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.bootstrap import App
from core.accounts import Account, Role, User
from core.clock import FixedClock
from core.reminders import Outcome, RenewalStep
from storage.audit import audit
from tests.support.builders import envelope_json, import_envelopes, linked_user, seed_account
from tests.support.scheduler import Instance, RecordingSender, Sent, SharedLog, as_utc, instance
from tests.support.scheduler import rows as query

SP, MANAUS = ZoneInfo("America/Sao_Paulo"), ZoneInfo("America/Manaus")


def local(zone: ZoneInfo, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock moment in December 2026 in `zone`, as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=zone).astimezone(UTC)


MIDNIGHT = local(SP, 2, 0)  # 03:00 UTC
EIGHT = local(SP, 2, 8)  # 11:00 UTC


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(local(SP, 1, 23))


def every(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    moment = start
    while moment <= end:
        yield moment
        moment += step


def ticks(
    clock: FixedClock, moments: Iterable[datetime], run: Callable[[], object], log: list[Sent]
) -> list[tuple[datetime, Sent]]:
    """Tick at each moment; each message with the (fixed) clock of the tick that sent it."""
    out = []
    for moment in moments:
        clock.set(moment)
        before = len(log)
        run()
        out += [(moment, s) for s in log[before:]]
    return out


def renewed(sent: list[tuple[datetime, Sent]]) -> list[tuple[datetime, int]]:
    return [(at, s.chat_id) for at, s in sent if "renovado" in s.html]


@dataclass(frozen=True)
class Individual:
    account: Account
    admin: User


def individual(
    app: App, name: str, renews_at: datetime, zone: str = "America/Sao_Paulo"
) -> Individual:
    """A "pessoa física" account (20 non-cumulative credits) that spent 3 of them."""
    account = app.lacre.create_account(name, "pessoa-fisica", zone)
    admin = linked_user(app, account.id, Role.ADMIN)
    ref = "SEAL"
    ids = import_envelopes(
        app, account.id, envelope_json(ref, credits=3, expires_at="2027-06-01T18:00:00-03:00")
    )
    app.lacre.seal(admin.id, ids[ref])
    with app.uow() as uow:
        uow.accounts.set_plan(account.id, "pessoa-fisica", renews_at)
        uow.commit()
    return Individual(account, admin)


def renewal_rows(app: App, account_id: int) -> list[tuple[str, int]]:
    found = query(
        app,
        "SELECT state, recipients FROM plan_renewals WHERE account_id = :a ORDER BY id",
        a=account_id,
    )
    return [(r[0], r[1]) for r in found]


def held_watermark(app: App) -> list[object]:
    return [
        r[0] for r in query(app, "SELECT value FROM scheduler_marks WHERE name = 'renewals-held'")
    ]


def test_a_midnight_renewal_moves_the_money_at_midnight_and_is_told_at_eight_once(
    app: App, clock: FixedClock, db_url: str
) -> None:
    ana = individual(app, "Dra. Ana", MIDNIGHT)
    assert app.lacre.balances(ana.account.id).credits == 17
    sender = RecordingSender()
    night = instance(db_url, sender, clock=clock)
    sent = ticks(clock, [local(SP, 1, 23, 55), MIDNIGHT], night.run, sender.log)
    assert sent == []
    cycle = f"{ana.account.id}:2026-12-02"
    entries = query(
        app,
        "SELECT idempotency_key, amount, created_at FROM ledger_entries "
        "WHERE idempotency_key IN (:e, :r) ORDER BY id",
        e=f"expiry:{cycle}",
        r=f"renew:{cycle}",
    )
    assert [(r[0], r[1], as_utc(r[2])) for r in entries] == [
        (f"expiry:{cycle}", -17, MIDNIGHT),
        (f"renew:{cycle}", 20, MIDNIGHT),
    ]
    assert app.lacre.balances(ana.account.id).credits == 20
    with app.uow(write=False) as uow:
        moved = uow.accounts.get(ana.account.id)
        assert moved is not None and moved.plan_renews_at == datetime(2027, 1, 2, 3, tzinfo=UTC)
    assert renewal_rows(app, ana.account.id) == [("held", 0)]
    sent = ticks(
        clock,
        every(MIDNIGHT + timedelta(minutes=5), local(SP, 2, 3), timedelta(minutes=5)),
        night.run,
        sender.log,
    )
    night.close()  # a restart between the hold and the morning: a new process, no memory
    morning = instance(db_url, sender, clock=clock)
    sent += ticks(
        clock,
        every(local(SP, 2, 3, 5), local(SP, 2, 12), timedelta(minutes=5)),
        morning.run,
        sender.log,
    )
    morning.close()
    assert renewed(sent) == [(EIGHT, ana.admin.telegram_user_id)]
    assert len(sent) == 1
    html = sent[0][1].html
    assert "17 créditos não usados expiraram" in html and "+20 créditos do plano." in html
    assert "Saldo: 20 créditos · 5 créditos de notificação" in html  # after the renewal
    assert renewal_rows(app, ana.account.id) == [("sent", 1)]
    assert held_watermark(app) == [None]  # nothing held: the next search reads no row
    with app.engine.connect() as conn:
        assert audit(conn) == []


def test_two_instances_ticking_side_by_side_release_each_held_notice_once(
    app: App, clock: FixedClock, db_url: str
) -> None:
    people = [individual(app, f"Conta {n}", MIDNIGHT) for n in range(6)]
    log = SharedLog()
    pair = [instance(db_url, log.for_instance(n), clock=clock, name=n) for n in ("a", "b")]

    def both() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Instance.run, pair))

    try:
        moments = [MIDNIGHT, local(SP, 2, 4), local(SP, 2, 7, 55), EIGHT, EIGHT, local(SP, 2, 8, 5)]
        sent = ticks(clock, moments, both, log.log)
    finally:
        for inst in pair:
            inst.close()
    assert sorted(renewed(sent)) == sorted((EIGHT, p.admin.telegram_user_id) for p in people)
    assert len(sent) == len(people)
    for p in people:
        assert renewal_rows(app, p.account.id) == [("sent", 1)]
        keys = query(
            app,
            "SELECT idempotency_key FROM ledger_entries WHERE account_id = :a "
            "AND (idempotency_key LIKE 'renew:%' OR idempotency_key LIKE 'expiry:%')",
            a=p.account.id,
        )
        cycle = f"{p.account.id}:2026-12-02"
        assert sorted(k[0] for k in keys) == [f"expiry:{cycle}", f"renew:{cycle}"]


def test_without_quiet_hours_the_notice_goes_at_once_and_turning_them_off_releases_it(
    app: App, clock: FixedClock, db_url: str
) -> None:
    loud = individual(app, "Sem silêncio", MIDNIGHT)
    late = individual(app, "Muda de ideia", MIDNIGHT)
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    try:
        sched.reminders.update(loud.admin.id, lambda s: replace(s, quiet=None))
        sent = ticks(clock, [MIDNIGHT, local(SP, 2, 1)], sched.run, sender.log)
        assert renewed(sent) == [(MIDNIGHT, loud.admin.telegram_user_id)]  # as before
        assert renewal_rows(app, late.account.id) == [("held", 0)]
        clock.set(local(SP, 2, 2))
        sched.reminders.update(late.admin.id, lambda s: replace(s, quiet=None))
        sent = ticks(clock, [local(SP, 2, 2), local(SP, 2, 9)], sched.run, sender.log)
    finally:
        sched.close()
    assert renewed(sent) == [(local(SP, 2, 2), late.admin.telegram_user_id)]
    assert renewal_rows(app, loud.account.id) == renewal_rows(app, late.account.id) == [("sent", 1)]


def test_each_account_is_told_after_the_quiet_hours_of_its_own_zone(
    app: App, clock: FixedClock, db_url: str
) -> None:
    renews_at = datetime(2026, 12, 2, 4, tzinfo=UTC)  # 01:00 in São Paulo, 00:00 in Manaus
    sp = individual(app, "São Paulo", renews_at)
    mn = individual(app, "Manaus", renews_at, "America/Manaus")
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    try:
        moments = every(renews_at - timedelta(minutes=15), local(SP, 2, 12), timedelta(minutes=15))
        sent = ticks(clock, moments, sched.run, sender.log)
    finally:
        sched.close()
    assert renewed(sent) == [
        (local(SP, 2, 8), sp.admin.telegram_user_id),  # 11:00 UTC
        (local(MANAUS, 2, 8), mn.admin.telegram_user_id),  # 12:00 UTC
    ]
    created = query(app, "SELECT created_at FROM plan_renewals ORDER BY id")
    assert [as_utc(r[0]) for r in created] == [renews_at, renews_at]


def test_a_plan_changed_in_the_night_leaves_the_morning_notice_naming_the_renewed_plan(
    app: App, clock: FixedClock, db_url: str
) -> None:
    ana = individual(app, "Dra. Ana", MIDNIGHT)
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    try:
        sent = ticks(clock, [MIDNIGHT], sched.run, sender.log)
        assert sent == [] and renewal_rows(app, ana.account.id) == [("held", 0)]
        clock.set(local(SP, 2, 2))
        with app.uow() as uow:  # at 02:00 the account moves to "Essencial"
            uow.accounts.set_plan(ana.account.id, "essencial", datetime(2027, 1, 2, 5, tzinfo=UTC))
            uow.commit()
        sent = ticks(clock, [local(SP, 2, 2), EIGHT], sched.run, sender.log)
    finally:
        sched.close()
    assert renewed(sent) == [(EIGHT, ana.admin.telegram_user_id)]
    html = sent[0][1].html
    # What renewed at midnight was "Pessoa Física", with its lapse and its grant.
    assert "Plano Pessoa Física renovado" in html and "Essencial" not in html
    assert "17 créditos não usados expiraram" in html and "+20 créditos do plano." in html


def test_a_notice_past_its_quiet_hours_is_not_kept_waiting_behind_a_page_of_quiet_ones(
    app: App, clock: FixedClock, db_url: str
) -> None:
    """More held notices of a later zone than one page: the tick reads on past them, so São
    Paulo's goes at 08:00 in São Paulo, not at 08:00 in Manaus with theirs."""
    renews_at = datetime(2026, 12, 2, 4, tzinfo=UTC)  # 00:00 in Manaus, 01:00 in São Paulo
    manaus = [individual(app, f"Manaus {n}", renews_at, "America/Manaus") for n in range(3)]
    sp = individual(app, "São Paulo", renews_at)
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    sched.reminders.batch = 2  # a page holds two rows
    try:
        moments = every(renews_at, local(SP, 2, 12), timedelta(minutes=15))
        sent = ticks(clock, moments, sched.run, sender.log)
    finally:
        sched.close()
    held_first = query(app, "SELECT account_id FROM plan_renewals ORDER BY id LIMIT 2")
    assert {r[0] for r in held_first} <= {m.account.id for m in manaus}  # the first page
    assert renewed(sent) == [
        (local(SP, 2, 8), sp.admin.telegram_user_id),
        *((local(MANAUS, 2, 8), m.admin.telegram_user_id) for m in manaus),
    ]
    for person in (*manaus, sp):
        assert renewal_rows(app, person.account.id) == [("sent", 1)]


def test_a_hold_and_a_release_at_the_same_moment_never_lose_the_held_row(
    app: App, clock: FixedClock
) -> None:
    """The release reads held rows from a watermark that holds lower: whichever of the two
    transactions goes first, the other waits for its commit, so no hold slips past the mark."""
    first, second, third = (app.lacre.create_account(f"C{n}", "pessoa-fisica").id for n in range(3))
    step = RenewalStep(MIDNIGHT, datetime(2027, 1, 2, 3, tzinfo=UTC), 0, 20, 0)

    def hold(account_id: int) -> int:
        with app.uow() as uow:
            found = uow.reminders.record_renewal(account_id, step, MIDNIGHT, Outcome.HELD)
            uow.commit()
        assert found is not None
        return found

    def held() -> list[int]:
        with app.uow() as uow:
            ids = [h.renewal_id for h in uow.reminders.held_renewals(10)]
            uow.commit()
        return ids

    x = hold(first)
    with ThreadPoolExecutor(1) as pool:
        with app.uow() as holding:  # the hold first: the release waits, then sees it
            y = holding.reminders.record_renewal(second, step, MIDNIGHT, Outcome.HELD)
            release = pool.submit(held)
            time.sleep(0.5)
            assert not release.done()
            holding.commit()
        assert release.result(timeout=10) == [x, y]
        with app.uow() as uow:
            assert uow.reminders.release_renewal(x) and uow.reminders.release_renewal(y)
            uow.commit()
        with app.uow() as releasing:  # the release first (it clears the mark): the hold waits
            assert releasing.reminders.held_renewals(10) == []
            holding_later = pool.submit(hold, third)
            time.sleep(0.5)
            assert not holding_later.done()
            releasing.commit()
        z = holding_later.result(timeout=10)
    assert held() == [z]
    assert held_watermark(app) == [z]


def alerts_sent(sent: list[tuple[datetime, Sent]]) -> list[tuple[datetime, int, str]]:
    return [(at, s.chat_id, s.html.splitlines()[0]) for at, s in sent if "⚠️" in s.html]


def credits_low(app: App, account_id: int) -> bool:
    found = query(app, "SELECT credits_low FROM balance_alerts WHERE account_id = :a", a=account_id)
    return bool(found[0][0])


INSUFFICIENT = "⚠️ <b>Créditos insuficientes para os rascunhos</b>"


def test_a_low_balance_crossing_at_ten_pm_is_told_at_the_first_tick_at_eight_once(
    app: App, clock: FixedClock, db_url: str
) -> None:
    seeded = seed_account(app)  # "essencial": 30 credits
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    ten = timedelta(minutes=10)
    try:
        # The first tick takes the hourly sweep's turn: sweeps then run at :50, never at 08:00.
        sent = ticks(clock, [local(SP, 1, 21, 50)], sched.run, sender.log)
        clock.set(local(SP, 1, 22))
        import_envelopes(app, seeded.account.id, envelope_json("DRAFT", credits=40))
        sent += ticks(
            clock, every(local(SP, 1, 22), local(SP, 2, 7, 50), ten), sched.run, sender.log
        )
        assert sent == [] and not credits_low(app, seeded.account.id)  # not recorded at night
        sent = ticks(clock, every(EIGHT, local(SP, 2, 12), ten), sched.run, sender.log)
    finally:
        sched.close()
    assert alerts_sent(sent) == [(EIGHT, seeded.admin.telegram_user_id, INSUFFICIENT)]
    assert len(sent) == 1 and credits_low(app, seeded.account.id)


def test_a_recovery_at_night_is_recorded_silently_and_the_next_crossing_waits(
    app: App, clock: FixedClock, db_url: str
) -> None:
    seeded = seed_account(app)
    sender = RecordingSender()
    sched = instance(db_url, sender, clock=clock)
    half = timedelta(minutes=30)
    try:
        clock.set(local(SP, 1, 19))
        import_envelopes(app, seeded.account.id, envelope_json("DRAFT", credits=40))
        sent = ticks(clock, [local(SP, 1, 19)], sched.run, sender.log)  # daytime: at once
        clock.set(local(SP, 1, 21))
        app.lacre.grant(seeded.account.id, credits=20)  # 50 cover the 40
        sent += ticks(clock, [local(SP, 1, 21)], sched.run, sender.log)
        assert not credits_low(app, seeded.account.id)
        clock.set(local(SP, 1, 23))
        import_envelopes(app, seeded.account.id, envelope_json("DRAFT-2", credits=15))
        sent += ticks(clock, every(local(SP, 1, 23), local(SP, 2, 10), half), sched.run, sender.log)
    finally:
        sched.close()
    assert alerts_sent(sent) == [
        (local(SP, 1, 19), seeded.admin.telegram_user_id, INSUFFICIENT),
        (EIGHT, seeded.admin.telegram_user_id, INSUFFICIENT),
    ]
