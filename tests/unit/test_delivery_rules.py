"""The pure delivery rules: what each provider answer means for the row, refunds, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.i18n import LANGUAGES, catalog
from core.delivery import (
    REASONS,
    SENT_FIRST_CHECK,
    Attempt,
    Change,
    DeliveryPolicy,
    Verdict,
    after_attempt,
    after_provider_status,
    gave_up,
    is_permanent,
    not_sendable,
    reason_for,
    smtp_verdict,
    twilio_create_verdict,
)
from core.notifications import Channel, DeliveryStatus

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        (201, None, Verdict.ACCEPTED),
        (429, 20429, Verdict.RETRY),  # never processed: the only safe retry
        (400, 21211, Verdict.REJECTED),
        (400, 21614, Verdict.REJECTED),
        (401, 20003, Verdict.REJECTED),
        (500, 20500, Verdict.UNKNOWN),  # may have been created: reconcile
        (503, None, Verdict.UNKNOWN),
        (None, None, Verdict.UNKNOWN),  # the request left, no answer came back
    ],
)
def test_a_twilio_create_answer_is_retried_only_when_nothing_was_created(
    status: int | None, code: int | None, verdict: Verdict
) -> None:
    assert twilio_create_verdict(status, code) is verdict


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(21211, True), (21614, True), (21408, True), (21610, True), (30005, True), (30006, True),
     (30007, True), (30003, False), (30008, False), ("30006", True), ("", False), (None, False),
     ("abc", False)],
)  # fmt: skip
def test_twilio_error_codes_are_told_apart_permanent_from_temporary(
    code: int | str | None, permanent: bool
) -> None:
    assert is_permanent(code) is permanent


@pytest.mark.parametrize(
    ("channel", "status", "expected"),
    [
        (Channel.SMS, "queued", Change(DeliveryStatus.SENT)),
        (Channel.SMS, "accepted", Change(DeliveryStatus.SENT)),
        (Channel.SMS, "sending", Change(DeliveryStatus.SENT)),
        (Channel.SMS, "sent", Change(DeliveryStatus.SENT)),
        (Channel.SMS, "delivered", Change(DeliveryStatus.DELIVERED)),
        (Channel.WHATSAPP, "read", Change(DeliveryStatus.DELIVERED)),
        (
            Channel.SMS,
            "failed",
            Change(DeliveryStatus.FAILED, refund=True, reason="rejected"),
        ),
        # SMS undelivered is billed by the carrier: no refund.
        (
            Channel.SMS,
            "undelivered",
            Change(DeliveryStatus.FAILED, refund=False, reason="undelivered"),
        ),
        # WhatsApp undelivered is not billed: refund.
        (
            Channel.WHATSAPP,
            "undelivered",
            Change(DeliveryStatus.FAILED, refund=True, reason="undelivered"),
        ),
        (Channel.SMS, "receiving", None),
        (Channel.SMS, "something-new", None),
    ],
)
def test_provider_statuses_map_to_outbox_moves_per_channel(
    channel: Channel, status: str, expected: Change | None
) -> None:
    assert after_provider_status(channel, status) == expected


def test_an_error_code_names_the_reason_the_owner_reads() -> None:
    change = after_provider_status(Channel.WHATSAPP, "failed", "63016")
    assert change == Change(
        DeliveryStatus.FAILED, refund=True, reason="whatsapp_template", error_code="63016"
    )
    assert reason_for(30003, "undelivered") == "unreachable"
    assert reason_for(None, "undelivered") == "undelivered"
    assert reason_for(99999, "rejected") == "rejected"


def test_attempts_become_moves_and_a_retry_that_ran_out_refunds() -> None:
    accepted = Attempt(Verdict.ACCEPTED, provider_id="SM1", provider_status="queued")
    assert after_attempt(Channel.SMS, accepted) == Change(DeliveryStatus.SENT)
    unknown = after_attempt(Channel.SMS, Attempt(Verdict.UNKNOWN))
    assert unknown == Change(DeliveryStatus.UNKNOWN)
    assert not unknown.tell_owner
    rejected = after_attempt(Channel.SMS, Attempt(Verdict.REJECTED, error_code="21614"))
    assert rejected == Change(
        DeliveryStatus.FAILED, refund=True, reason="not_mobile", error_code="21614"
    )
    assert rejected.tell_owner
    smtp = after_attempt(Channel.EMAIL, Attempt(Verdict.REJECTED, error_code="550"))
    assert smtp is not None and smtp.reason == "smtp_rejected"
    assert after_attempt(Channel.SMS, Attempt(Verdict.RETRY)) is None
    assert gave_up(Channel.SMS, Attempt(Verdict.RETRY)).refund
    assert gave_up(Channel.EMAIL, Attempt(Verdict.RETRY)).reason == "smtp_unavailable"


def test_a_stale_send_tells_the_owner_only_when_credit_comes_back() -> None:
    assert not_sendable(Channel.SMS).tell_owner
    assert not not_sendable(Channel.EMAIL).tell_owner


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(None, Verdict.RETRY), (421, Verdict.RETRY), (451, Verdict.RETRY), (550, Verdict.REJECTED),
     (554, Verdict.REJECTED)],
)  # fmt: skip
def test_smtp_4xx_is_temporary_and_5xx_final(code: int | None, verdict: Verdict) -> None:
    assert smtp_verdict(code) is verdict


def test_email_retries_back_off_and_then_stop() -> None:
    policy = DeliveryPolicy()
    waits = [policy.email_retry_at(n, NOW) for n in range(1, 8)]
    assert waits[:6] == [NOW + d for d in policy.email_retry_delays]
    assert waits[6] is None
    gaps = [w - NOW for w in waits[:6] if w is not None]
    assert gaps == sorted(gaps) and len(set(gaps)) == 6


def test_unknown_rows_are_looked_up_ever_less_often_then_given_up() -> None:
    policy = DeliveryPolicy()
    since = NOW
    assert policy.reconcile_at(since, NOW) == NOW + timedelta(seconds=15)
    assert policy.reconcile_at(since, NOW + timedelta(minutes=2)) == NOW + timedelta(minutes=4)
    late = NOW + timedelta(minutes=50)
    assert policy.reconcile_at(since, late) == NOW + timedelta(hours=1)
    assert policy.reconcile_at(since, NOW + timedelta(hours=1)) is None


def test_every_reason_has_a_text_in_every_language() -> None:
    for language in LANGUAGES:
        missing = [r for r in REASONS if not catalog(language).get(f"delivery.reason.{r}")]
        assert missing == [], language


def test_a_sent_row_is_looked_up_every_six_hours_for_three_days() -> None:
    policy = DeliveryPolicy()
    sent = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert policy.sent_check_at(sent, sent + timedelta(hours=2)) == sent + timedelta(hours=8)
    # The last lookup lands on the deadline, not past it; after it, none.
    assert policy.sent_check_at(sent, sent + timedelta(hours=70)) == sent + timedelta(hours=72)
    assert policy.sent_check_at(sent, sent + timedelta(hours=72)) is None
    assert timedelta(hours=2) == SENT_FIRST_CHECK
