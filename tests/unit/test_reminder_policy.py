"""The reminder policy as pure rules: quiet hours, slot placement, catch-up, resends, renewal."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.errors import InvalidInput
from core.ledger import Balances
from core.plans import DEFAULT_PLANS
from core.reminders import (
    DAY,
    DEFAULT_QUIET,
    HOUR,
    LAST_CALL,
    BalanceCheck,
    QuietHours,
    ReminderSettings,
    Slot,
    next_renewal,
    nudge_slots,
    placed,
    plan_nudge,
    plan_resend,
    renewal_step,
    resend_rounds,
)

SP = ZoneInfo("America/Sao_Paulo")  # UTC-3, no daylight saving since 2019
MANAUS = ZoneInfo("America/Manaus")  # UTC-4


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def plan(code: str):  # type: ignore[no-untyped-def]
    return next(p for p in DEFAULT_PLANS if p.code == code)


def test_the_quiet_window_wraps_past_midnight_in_the_account_zone() -> None:
    start, end = DEFAULT_QUIET.window(local(SP, 2026, 12, 1, 23, 30), SP) or (None, None)
    assert (start, end) == (local(SP, 2026, 12, 1, 20), local(SP, 2026, 12, 2, 8))
    start, end = DEFAULT_QUIET.window(local(SP, 2026, 12, 2, 7, 59), SP) or (None, None)
    assert (start, end) == (local(SP, 2026, 12, 1, 20), local(SP, 2026, 12, 2, 8))
    assert DEFAULT_QUIET.window(local(SP, 2026, 12, 2, 8, 0), SP) is None
    assert DEFAULT_QUIET.window(local(SP, 2026, 12, 2, 19, 59), SP) is None


def test_the_same_utc_moment_is_quiet_in_manaus_but_not_in_sao_paulo() -> None:
    moment = datetime(2026, 12, 2, 11, 30, tzinfo=UTC)  # 08:30 in São Paulo, 07:30 in Manaus
    assert DEFAULT_QUIET.window(moment, SP) is None
    assert DEFAULT_QUIET.window(moment, MANAUS) is not None


def test_a_nudge_due_in_quiet_hours_waits_for_them_to_end() -> None:
    deadline = local(SP, 2026, 12, 3, 12)
    assert placed(local(SP, 2026, 12, 2, 22), deadline, DEFAULT_QUIET, SP) == local(
        SP, 2026, 12, 3, 8
    )


def test_when_the_deadline_falls_inside_the_quiet_hours_the_nudge_goes_just_before_them() -> None:
    deadline = local(SP, 2026, 12, 2, 23)  # 2 hours before: 21:00, quiet, deadline before 08:00
    assert (
        placed(deadline - 2 * HOUR, deadline, DEFAULT_QUIET, SP)
        == local(SP, 2026, 12, 2, 20) - LAST_CALL
    )
    early = local(SP, 2026, 12, 3, 7)  # deadline in the morning: previous evening 19:55
    assert placed(early - 2 * HOUR, early, DEFAULT_QUIET, SP) == local(SP, 2026, 12, 2, 19, 55)


def test_manaus_quiet_hours_follow_manaus_clocks() -> None:
    deadline = local(MANAUS, 2026, 12, 3, 7)
    assert placed(deadline - 2 * HOUR, deadline, DEFAULT_QUIET, MANAUS) == datetime(
        2026, 12, 2, 23, 55, tzinfo=UTC
    )
    assert placed(deadline - DAY, deadline, DEFAULT_QUIET, MANAUS) == datetime(
        2026, 12, 2, 12, 0, tzinfo=UTC
    )


def test_default_slots_are_three_days_one_day_and_two_hours_before() -> None:
    deadline = local(SP, 2026, 12, 10, 18)
    slots = nudge_slots(deadline, ReminderSettings(), SP, local(SP, 2026, 12, 1))
    assert [(s.offset, s.due_at) for s in slots] == [
        (3 * DAY, local(SP, 2026, 12, 7, 18)),
        (DAY, local(SP, 2026, 12, 9, 18)),
        (2 * HOUR, local(SP, 2026, 12, 10, 16)),
    ]


def test_slots_due_before_the_envelope_was_sealed_are_not_owed() -> None:
    deadline = local(SP, 2026, 12, 10, 18)
    slots = nudge_slots(deadline, ReminderSettings(), SP, local(SP, 2026, 12, 8, 9))
    assert [s.offset for s in slots] == [DAY, 2 * HOUR]
    later = ReminderSettings(nudges_since=local(SP, 2026, 12, 9, 19))
    assert [s.offset for s in nudge_slots(deadline, later, SP, local(SP, 2026, 12, 1))] == [
        2 * HOUR
    ]


def test_turned_off_reminders_have_no_slots() -> None:
    off = ReminderSettings(enabled=False)
    assert nudge_slots(local(SP, 2026, 12, 10, 18), off, SP, local(SP, 2026, 12, 1)) == ()


def test_after_downtime_only_the_latest_passed_slot_goes_and_the_rest_is_superseded() -> None:
    deadline = local(SP, 2026, 12, 10, 18)
    slots = nudge_slots(deadline, ReminderSettings(), SP, local(SP, 2026, 12, 1))
    now = local(SP, 2026, 12, 9, 18, 5)
    result = plan_nudge(slots, deadline, now, DEFAULT_QUIET, SP)
    assert result.send == Slot(DAY, local(SP, 2026, 12, 9, 18))
    assert result.superseded == (Slot(3 * DAY, local(SP, 2026, 12, 7, 18)),)
    assert result.next_check == local(SP, 2026, 12, 10, 16)


def test_nothing_is_owed_once_the_deadline_passed() -> None:
    deadline = local(SP, 2026, 12, 10, 18)
    slots = nudge_slots(deadline, ReminderSettings(), SP, local(SP, 2026, 12, 1))
    assert plan_nudge(slots, deadline, deadline, DEFAULT_QUIET, SP).send is None
    assert plan_nudge(slots, deadline, deadline + HOUR, DEFAULT_QUIET, SP).next_check is None


def test_a_catch_up_that_lands_in_quiet_hours_waits_for_the_morning() -> None:
    deadline = local(SP, 2026, 12, 10, 18)
    slots = nudge_slots(deadline, ReminderSettings(), SP, local(SP, 2026, 12, 1))
    result = plan_nudge(slots, deadline, local(SP, 2026, 12, 9, 23), DEFAULT_QUIET, SP)
    assert result.send is None
    assert result.next_check == local(SP, 2026, 12, 10, 8)


def test_a_catch_up_in_quiet_hours_with_the_deadline_before_morning_is_dropped() -> None:
    deadline = local(SP, 2026, 12, 10, 6)
    slots = (Slot(2 * HOUR, local(SP, 2026, 12, 9, 19, 55)),)
    result = plan_nudge(slots, deadline, local(SP, 2026, 12, 9, 22), DEFAULT_QUIET, SP)
    assert (result.send, result.next_check) == (None, None)


def test_automatic_resends_go_every_n_days_at_most_three_times_before_the_deadline() -> None:
    base = local(SP, 2026, 12, 1, 10)
    rounds = resend_rounds(base, 7, local(SP, 2026, 12, 20, 10), DEFAULT_QUIET, SP)
    assert rounds == ((1, local(SP, 2026, 12, 8, 10)), (2, local(SP, 2026, 12, 15, 10)))
    daily = resend_rounds(base, 1, local(SP, 2026, 12, 30, 10), DEFAULT_QUIET, SP)
    assert [k for k, _ in daily] == [1, 2, 3]
    assert (
        plan_resend(daily, local(SP, 2026, 12, 30), local(SP, 2026, 12, 3, 11), None, SP).send == 2
    )


def test_resends_respect_quiet_hours_too() -> None:
    base = local(SP, 2026, 12, 1, 22)
    rounds = resend_rounds(base, 1, local(SP, 2026, 12, 30), DEFAULT_QUIET, SP)
    assert rounds[0] == (1, local(SP, 2026, 12, 3, 8))


def test_renewal_keeps_the_day_of_the_month_it_started_on() -> None:
    anchor = datetime(2026, 1, 31, 12, tzinfo=UTC)
    feb = next_renewal(anchor, anchor)
    mar = next_renewal(feb, anchor)
    assert (feb.date().isoformat(), mar.date().isoformat()) == ("2026-02-28", "2026-03-31")
    mid = datetime(2026, 5, 15, 9, tzinfo=UTC)
    assert next_renewal(mid, mid) == datetime(2026, 6, 15, 9, tzinfo=UTC)


def test_a_non_cumulative_plan_lapses_at_most_one_month_of_credits() -> None:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    individual = plan("pessoa-fisica")
    assert renewal_step(individual, when, when, credits=7).lapse == 7
    assert renewal_step(individual, when, when, credits=35).lapse == 20
    assert renewal_step(individual, when, when, credits=35).grant == 20
    assert renewal_step(plan("essencial"), when, when, credits=35).lapse == 0
    assert renewal_step(plan("personalizado"), when, when, credits=35).grant == 0


def test_balance_checks_compare_against_the_threshold_and_the_drafts_quotes() -> None:
    low = BalanceCheck(Balances(credits=2, notification_credits=1), 2, drafts=1, drafts_credits=3)
    assert (low.notification_low, low.credits_low) == (True, True)
    fine = BalanceCheck(Balances(credits=3, notification_credits=2), 2, drafts=1, drafts_credits=3)
    assert (fine.notification_low, fine.credits_low) == (False, False)
    no_drafts = BalanceCheck(Balances(0, 5), 2, drafts=0, drafts_credits=0)
    assert no_drafts.credits_low is False


def test_settings_refuse_what_the_menu_does_not_offer() -> None:
    with pytest.raises(InvalidInput):
        ReminderSettings(offsets=(timedelta(hours=5),))
    with pytest.raises(InvalidInput):
        ReminderSettings(auto_resend_days=5)
    with pytest.raises(InvalidInput):
        ReminderSettings(offsets=(DAY, DAY))
    assert ReminderSettings(offsets=(HOUR, 7 * DAY)).offsets == (7 * DAY, HOUR)
    with pytest.raises(ValueError, match="different"):
        QuietHours(time(8), time(8))
    with pytest.raises(ValueError, match="20 hours"):
        QuietHours(time(8), time(7))
