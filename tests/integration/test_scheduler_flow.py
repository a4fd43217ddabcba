"""The scheduler's passes on SQLite and PostgreSQL, one instance, a fixed clock moved by hand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.bootstrap import App
from bot.telegram import callbacks
from core.accounts import Role
from core.clock import FixedClock
from core.errors import NotAllowed, NotFound
from core.ledger import PAID_REASONS, Reason
from core.notifications import Channel, Kind
from core.reminders import DAY, HOUR, ReminderSettings
from storage.audit import audit
from tests.support.builders import envelope_json, import_envelopes, linked_user, seed_account
from tests.support.scheduler import Instance, RecordingSender, as_utc, instance, rows

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def sched(app: App, clock: FixedClock, sender: RecordingSender, db_url: str) -> Iterator[Instance]:
    built = instance(db_url, sender, clock=clock)
    yield built
    built.close()


def pending(ref: str, deadline: str, **extra: Any) -> dict[str, Any]:
    return envelope_json(ref, status="pendente", expires_at=deadline, **extra)


def at(clock: FixedClock, moment: datetime, sched: Instance) -> None:
    clock.set(moment)
    sched.run()


def chats(sender: RecordingSender) -> list[int]:
    return [s.chat_id for s in sender.log]


def nudge_rows(app: App) -> list[tuple[int, int, str]]:
    return [
        (r[0], r[1], r[2])
        for r in rows(
            app, "SELECT envelope_id, offset_seconds, state FROM reminder_nudges ORDER BY id"
        )
    ]


def test_a_due_nudge_reaches_the_creator_and_the_admins_once_with_its_buttons(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)
    env_id = import_envelopes(
        app,
        seeded.account.id,
        pending("ENV-1", "2026-12-02T18:00:00-03:00", created_by=seeded.member.id),
    )["ENV-1"]
    sched.run()
    assert sender.log == []  # 3 days before is 29/11 18:00 in São Paulo
    at(clock, datetime(2026, 11, 29, 20, 59, tzinfo=UTC), sched)
    assert sender.log == []
    at(clock, datetime(2026, 11, 29, 21, 0, tzinfo=UTC), sched)
    assert sorted(chats(sender)) == sorted(
        [seeded.member.telegram_user_id, seeded.admin.telegram_user_id]
    )
    first = sender.log[0]
    assert "Contrato de locação" in first.html and "faltam 3 dias" in first.html
    assert "Maria Souza" in first.html and "João Lima" in first.html
    data = [d for _, d in first.buttons]
    maria = app.lacre.envelope(seeded.admin.id, env_id).signer_by_email("maria@example.com")
    assert data == [
        f"rsa:{env_id}",
        f"rsc:{env_id}:{maria.id}:sms",
        f"rsc:{env_id}:{maria.id}:whatsapp",
        f"env:{env_id}",
        f"mute:{env_id}",
    ]
    assert all(len(d.encode()) <= 64 for d in data)
    # The bot's own parser (brief B) serves the resend and open buttons from any message.
    assert all(callbacks.parse(d) is not None for d in data[:-1])
    assert dict(first.buttons)["E-mail para todos os pendentes (grátis)"] == f"rsa:{env_id}"
    for minutes in (0, 1, 30):
        at(clock, datetime(2026, 11, 29, 21, minutes, tzinfo=UTC) + timedelta(minutes=1), sched)
    assert len(sender.log) == 2
    assert nudge_rows(app) == [(env_id, int(3 * DAY.total_seconds()), "sent")]


def test_signed_cancelled_and_muted_envelopes_get_nothing_more(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)
    ids = import_envelopes(
        app,
        seeded.account.id,
        *(pending(ref, "2026-12-02T18:00:00-03:00") for ref in ("SIGN", "CANCEL", "MUTE", "KEEP")),
    )
    at(clock, datetime(2026, 11, 29, 21, 0, tzinfo=UTC), sched)
    assert len(sender.log) == 4
    for email in ("maria@example.com", "joao@example.com"):
        app.lacre.record_signature("SIGN", email, seeded.account.id)
    app.lacre.cancel(seeded.admin.id, ids["CANCEL"])
    assert sched.reminders.mute(seeded.admin.id, ids["MUTE"]) is True
    for hours in range(58, 24 * 7):  # past the 1-day and 2-hour slots and the deadline
        at(clock, NOW + timedelta(hours=hours), sched)
    later = sender.log[4:]
    keep = ids["KEEP"]
    assert len(later) == 3 and all(f"env:{keep}" in dict(s.buttons).values() for s in later)
    sent = {(e, o) for e, o, state in nudge_rows(app) if state == "sent"}
    assert {e for e, _ in sent} == set(ids.values())  # each got the first nudge...
    assert {o for e, o in sent if e != keep} == {int(3 * DAY.total_seconds())}  # ...only that
    expiries = rows(app, "SELECT envelope_id, state FROM envelope_expiries ORDER BY envelope_id")
    assert [(r[0], r[1]) for r in expiries] == [(ids["MUTE"], "skipped"), (keep, "sent")]


def test_an_expired_envelope_is_marked_once_and_its_people_told_once(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)
    env_id = import_envelopes(app, seeded.account.id, pending("OLD", "2026-11-27T18:00:00-03:00"))[
        "OLD"
    ]
    at(clock, datetime(2026, 11, 27, 19, 0, tzinfo=UTC), sched)  # 2h before: 16:00 local
    assert len(sender.log) == 1
    for minutes in range(0, 240, 20):
        at(clock, datetime(2026, 11, 27, 21, 0, tzinfo=UTC) + timedelta(minutes=minutes), sched)
    expired = [s for s in sender.log if "expirou" in s.html]
    assert len(expired) == 1 and len(sender.log) == 2
    assert expired[0].buttons == (("Abrir envelope", f"env:{env_id}"),)
    assert app.lacre.envelope(seeded.admin.id, env_id).display_status(clock.now()) == "expirado"
    assert len(rows(app, "SELECT id FROM envelope_expiries")) == 1
    assert rows(app, "SELECT count(*) FROM reminder_progress")[0][0] == 0


def test_automatic_resends_queue_free_emails_at_most_three_times_before_the_deadline(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)
    ids = import_envelopes(
        app,
        seeded.account.id,
        pending("AUTO", "2026-12-20T18:00:00-03:00"),
        pending("SHORT", "2026-11-29T08:30:00-03:00"),
    )
    sched.reminders.update(seeded.admin.id, lambda s: replace(s, auto_resend_days=1))
    entries_before = rows(app, "SELECT count(*) FROM ledger_entries")[0][0]
    for hours in range(0, 24 * 8, 1):
        at(clock, NOW + timedelta(hours=hours), sched)
    auto = rows(
        app,
        "SELECT envelope_id, signer_id, cost, created_at, idempotency_key, requested_by "
        "FROM notifications WHERE kind = :kind ORDER BY id",
        kind=Kind.AUTO_RESEND.value,
    )
    by_envelope: dict[int, list[Any]] = {}
    for r in auto:
        by_envelope.setdefault(r[0], []).append(r)
    assert len(by_envelope[ids["AUTO"]]) == 3 * 2  # three rounds, two signers in turn
    assert len(by_envelope[ids["SHORT"]]) == 2  # one round fits before its deadline
    assert all(r[2] == 0 and r[5] is None for r in auto)
    short = by_envelope[ids["SHORT"]]
    assert all(as_utc(r[3]) < datetime(2026, 11, 29, 11, 30, tzinfo=UTC) for r in short)
    assert rows(app, "SELECT count(*) FROM ledger_entries")[0][0] == entries_before
    with app.engine.connect() as conn:
        assert audit(conn) == []


def test_renewal_runs_once_per_cycle_across_restarts_and_lapses_unused_credits(
    app: App, clock: FixedClock, db_url: str
) -> None:
    account = app.lacre.create_account("Dra. Ana", "pessoa-fisica")
    admin = linked_user(app, account.id, Role.ADMIN)
    ids = import_envelopes(app, account.id, envelope_json("SEAL-1", credits=3))
    app.lacre.seal(admin.id, ids["SEAL-1"])
    assert app.lacre.balances(account.id).credits == 17
    renews_at = account.plan_renews_at
    assert renews_at is not None
    sender = RecordingSender()
    for restart in range(3):  # every tick on a fresh engine and fresh use cases
        clock.set(renews_at + timedelta(minutes=restart))
        fresh = instance(db_url, sender, clock=clock)
        fresh.run()
        fresh.close()
    entries = rows(
        app,
        "SELECT reason, amount, idempotency_key FROM ledger_entries "
        "WHERE reason IN ('plan_grant', 'plan_expiry') AND account_id = :a ORDER BY id",
        a=account.id,
    )
    cycle = f"{renews_at:%Y-%m-%d}"
    assert [tuple(r) for r in entries[-2:]] == [
        ("plan_expiry", -17, f"expiry:{account.id}:{cycle}"),
        ("plan_grant", 20, f"renew:{account.id}:{cycle}"),
    ]
    assert app.lacre.balances(account.id).credits == 20
    assert len(sender.log) == 1 and "17 créditos não usados expiraram" in sender.log[0].html
    with app.uow(write=False) as uow:
        moved = uow.accounts.get(account.id)
        assert moved is not None and moved.plan_renews_at == renews_at.replace(month=1, year=2027)
    # A long outage owes several cycles: each is taken once, in order.
    clock.set(datetime(2027, 4, 1, 12, tzinfo=UTC))
    for _ in range(2):
        again = instance(db_url, sender, clock=clock)
        again.run()
        again.close()
    keys = [r[2] for r in rows(app, "SELECT reason, amount, idempotency_key FROM ledger_entries")]
    renewals = sorted(k for k in keys if k.startswith("renew:"))
    assert renewals == [
        f"renew:{account.id}:{d}" for d in ("2026-12-27", "2027-01-27", "2027-02-27", "2027-03-27")
    ]
    assert len(set(keys)) == len(keys)
    with app.engine.connect() as conn:
        assert audit(conn) == []


def test_low_balance_alerts_fire_once_per_crossing(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)  # "essencial": 30 credits, 5 notification credits
    ids = import_envelopes(app, seeded.account.id, envelope_json("DRAFT", credits=40))
    sched.run()
    assert [s.html.splitlines()[0] for s in sender.log] == [
        "⚠️ <b>Créditos insuficientes para os rascunhos</b>"
    ]
    assert sender.log[0].chat_id == seeded.admin.telegram_user_id
    assert sender.log[0].buttons == (("Planos", "pl"),)
    sched.run()
    assert len(sender.log) == 1
    app.lacre.grant(seeded.account.id, credits=20)
    sched.run()
    app.lacre.seal(seeded.admin.id, ids["DRAFT"])  # 10 left, no drafts: nothing to say
    sched.run()
    import_envelopes(app, seeded.account.id, envelope_json("DRAFT-2", credits=15))
    sched.run()
    assert len(sender.log) == 2  # crossed again
    env = app.lacre.envelope(seeded.admin.id, ids["DRAFT"])
    maria = env.signer_by_email("maria@example.com")
    assert maria.id is not None
    for n, channel in enumerate([Channel.SMS, Channel.WHATSAPP, Channel.SMS, Channel.WHATSAPP]):
        clock.advance(timedelta(minutes=2))
        app.lacre.request_send(seeded.admin.id, env.id or 0, maria.id, channel, f"tap-{n}")
        sched.run()
    notification_alerts = [s for s in sender.log if "notificação acabando" in s.html]
    assert len(notification_alerts) == 1 and "Restam 1" in notification_alerts[0].html


def test_a_user_who_blocked_the_bot_is_marked_and_skipped_later(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app)
    import_envelopes(
        app,
        seeded.account.id,
        pending("ENV-1", "2026-12-02T18:00:00-03:00", created_by=seeded.member.id),
    )
    admin_chat = seeded.admin.telegram_user_id
    assert admin_chat is not None
    sender.blocked.add(admin_chat)
    at(clock, datetime(2026, 11, 29, 21, 0, tzinfo=UTC), sched)
    assert chats(sender) == [seeded.member.telegram_user_id]
    blocked = rows(
        app, "SELECT blocked_at FROM telegram_chats WHERE telegram_user_id = :t", t=admin_chat
    )
    assert len(blocked) == 1 and blocked[0][0] is not None
    sender.blocked.clear()  # whatever Telegram says now, the mark keeps the chat skipped
    at(clock, datetime(2026, 12, 1, 21, 0, tzinfo=UTC), sched)
    assert chats(sender) == [seeded.member.telegram_user_id] * 2


def test_only_admins_change_the_policy_and_a_refusal_changes_nothing(
    app: App, clock: FixedClock, sched: Instance
) -> None:
    seeded = seed_account(app)
    before = sched.reminders.view(seeded.member.id)
    assert before.can_edit is False and before.settings == ReminderSettings()
    with pytest.raises(NotAllowed):
        sched.reminders.update(seeded.member.id, lambda s: replace(s, enabled=False))
    assert sched.reminders.view(seeded.admin.id).settings == ReminderSettings()
    assert rows(app, "SELECT count(*) FROM reminder_settings")[0][0] == 0
    changed = sched.reminders.update(seeded.admin.id, lambda s: replace(s, offsets=(7 * DAY, HOUR)))
    assert changed.settings.offsets == (7 * DAY, HOUR)
    assert changed.settings.nudges_since == NOW  # the new 7-day slot does not replay the past
    assert sched.reminders.view(seeded.member.id).settings.offsets == (7 * DAY, HOUR)


def test_mute_checks_who_may_see_the_envelope_and_changes_nothing_when_refused(
    app: App, sched: Instance
) -> None:
    seeded = seed_account(app)
    other = seed_account(app, name="Outra")
    ids = import_envelopes(
        app, seeded.account.id, pending("ADMIN-OWN", "2026-12-20T18:00:00-03:00")
    )
    env_id = ids["ADMIN-OWN"]
    for user_id in (seeded.member.id, other.admin.id):
        with pytest.raises(NotFound):
            sched.reminders.mute(user_id, env_id)
    with pytest.raises(NotFound):
        sched.reminders.mute(seeded.admin.id, 999_999)
    assert rows(app, "SELECT count(*) FROM reminder_mutes")[0][0] == 0
    assert sched.reminders.mute(seeded.admin.id, env_id) is True
    assert sched.reminders.mute(seeded.admin.id, env_id) is False
    assert rows(app, "SELECT count(*) FROM reminder_mutes")[0][0] == 1


def test_no_scheduler_path_writes_a_paid_ledger_entry(
    app: App, clock: FixedClock, sender: RecordingSender, sched: Instance
) -> None:
    seeded = seed_account(app, credits=1, notification_credits=0)
    individual = app.lacre.create_account("Dr. Bruno", "pessoa-fisica")
    linked_user(app, individual.id, Role.ADMIN)
    import_envelopes(
        app,
        seeded.account.id,
        pending("P-1", "2026-11-30T18:00:00-03:00"),
        pending("P-2", "2026-12-03T07:00:00-03:00"),
        envelope_json("D-1", credits=99),
    )
    sched.reminders.update(seeded.admin.id, lambda s: replace(s, auto_resend_days=1))
    last_entry = rows(app, "SELECT max(id) FROM ledger_entries")[0][0]
    last_send = rows(app, "SELECT coalesce(max(id), 0) FROM notifications")[0][0]
    for hours in range(0, 24 * 40, 6):  # renewals, alerts, resends, nudges and expiries
        at(clock, NOW + timedelta(hours=hours), sched)
    written = rows(
        app, "SELECT reason, amount, actor_user_id FROM ledger_entries WHERE id > :i", i=last_entry
    )
    reasons = {Reason(r[0]) for r in written}
    assert reasons == {Reason.PLAN_GRANT, Reason.PLAN_EXPIRY}
    assert not reasons & PAID_REASONS and all(r[2] is None for r in written)
    queued = rows(app, "SELECT kind, cost FROM notifications WHERE id > :i", i=last_send)
    assert queued and {(r[0], r[1]) for r in queued} == {(Kind.AUTO_RESEND.value, 0)}
    assert {"nudge", "expiry", "renewal", "alert"} <= {
        kind
        for s in sender.log
        for kind, word in (
            ("nudge", "Prazo"),
            ("expiry", "expirou"),
            ("renewal", "renovado"),
            ("alert", "⚠️"),
        )
        if word in s.html
    }
    with app.engine.connect() as conn:
        assert audit(conn) == []
