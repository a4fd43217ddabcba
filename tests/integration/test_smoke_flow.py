"""The core flow on both databases: import, seal once, resend paid, refund once, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.bootstrap import App
from core.notifications import Channel, DeliveryStatus
from storage.audit import audit
from tests.support.builders import envelope_json, import_envelopes, seed_account


def test_seal_charges_once_and_queues_free_emails(app: App) -> None:
    seeded = seed_account(app, credits=10)
    ids = import_envelopes(app, seeded.account.id, envelope_json())
    before = app.lacre.balances(seeded.account.id)
    first = app.lacre.seal(seeded.admin.id, ids["ENV-1001"], expected_total=3)
    second = app.lacre.seal(seeded.admin.id, ids["ENV-1001"], expected_total=3)
    after = app.lacre.balances(seeded.account.id)
    assert (first.charged, first.already_sealed) == (3, False)
    assert (second.charged, second.already_sealed) == (0, True)
    assert after.credits == before.credits - 3
    assert len(first.notified) == 2
    with app.engine.connect() as conn:
        assert audit(conn) == []


def test_paid_resend_then_failure_refunds_exactly_once(app: App) -> None:
    seeded = seed_account(app, credits=10)
    env_id = import_envelopes(app, seeded.account.id, envelope_json())["ENV-1001"]
    app.lacre.seal(seeded.admin.id, env_id)
    maria = app.lacre.envelope(seeded.admin.id, env_id).signer_by_email("maria@example.com")
    assert maria.id is not None
    sent = app.lacre.request_send(seeded.admin.id, env_id, maria.id, Channel.SMS, "tap-1")
    again = app.lacre.request_send(seeded.admin.id, env_id, maria.id, Channel.SMS, "tap-1")
    assert again.duplicate and again.notification.id == sent.notification.id
    assert app.lacre.balances(seeded.account.id).notification_credits == 5 - 1
    with app.uow() as uow:
        uow.notifications.set_status(
            sent.notification.id, DeliveryStatus.FAILED, app.clock.now(), error_code="30006"
        )
        uow.commit()
    assert app.lacre.refund(sent.notification.id) is True
    assert app.lacre.refund(sent.notification.id) is False
    assert app.lacre.balances(seeded.account.id).notification_credits == 5
    with app.engine.connect() as conn:
        assert audit(conn) == []


def test_ledger_rows_cannot_be_updated_or_deleted(app: App) -> None:
    seed_account(app, credits=1)
    for sql in ("UPDATE ledger_entries SET amount = 999", "DELETE FROM ledger_entries"):
        with app.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(sql))
