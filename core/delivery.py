"""Delivery rules: provider answers mapped to outbox statuses, refunds, retries and reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.notifications import Channel, DeliveryStatus

# Twilio errors that fail the same way however often we try: the number, the route or the
# recipient's own choice is the problem (https://www.twilio.com/docs/api/errors).
PERMANENT_TWILIO_ERRORS: frozenset[int] = frozenset(
    {
        21211,  # invalid 'To' number
        21408,  # sending to this region is not enabled (Geo Permissions)
        21610,  # the recipient opted out (replied STOP)
        21612,  # no route from this sender to this number
        21614,  # 'To' is not a mobile number
        30004,  # message blocked
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
        30007,  # filtered by the carrier
        63016,  # WhatsApp outside the 24-hour window without an approved template
    }
)

# Errors that may pass on a later try; we still never resend by ourselves (the owner decides).
TEMPORARY_TWILIO_ERRORS: frozenset[int] = frozenset(
    {
        20429,  # too many requests: the create was never processed
        30001,  # queue overflow
        30003,  # handset unreachable (switched off, no signal)
        30008,  # unknown error
        30017,  # carrier network congestion
    }
)

# What the owner is told, by error code; the texts live in the bot's `delivery.po`.
_REASONS: dict[int, str] = {
    20429: "provider_busy",
    21211: "invalid_number",
    21408: "country_not_enabled",
    21610: "opted_out",
    21612: "no_route",
    21614: "not_mobile",
    30003: "unreachable",
    30004: "blocked",
    30005: "unknown_number",
    30006: "landline",
    30007: "filtered",
    30008: "provider_error",
    63016: "whatsapp_template",
}

# Reasons that are not Twilio codes.
REASON_UNDELIVERED = "undelivered"  # the carrier gave up without a code
REASON_PROVIDER_UNAVAILABLE = "provider_unavailable"  # nothing left Lacre: 429 / refused
REASON_UNCONFIRMED = "unconfirmed"  # the request may have left; no trace of it was found
REASON_STALE = "stale"  # the signer signed or the envelope moved on before the send
REASON_REJECTED = "rejected"  # the provider refused the request, with an unlisted code
REASON_SMTP_REJECTED = "smtp_rejected"  # 5xx from the mail server
REASON_SMTP_UNAVAILABLE = "smtp_unavailable"  # 4xx or no connection, until we gave up

REASONS: frozenset[str] = frozenset(
    {
        *_REASONS.values(),
        REASON_UNDELIVERED,
        REASON_PROVIDER_UNAVAILABLE,
        REASON_UNCONFIRMED,
        REASON_STALE,
        REASON_REJECTED,
        REASON_SMTP_REJECTED,
        REASON_SMTP_UNAVAILABLE,
    }
)


def error_number(code: str | int | None) -> int | None:
    """Twilio sends `ErrorCode` as text; anything that is not a number counts as none."""
    if code is None or code == "":
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def is_permanent(code: str | int | None) -> bool:
    number = error_number(code)
    return number is not None and number in PERMANENT_TWILIO_ERRORS


def reason_for(code: str | int | None, fallback: str) -> str:
    number = error_number(code)
    return _REASONS.get(number, fallback) if number is not None else fallback


class Verdict(StrEnum):
    """What one provider call means for the row."""

    ACCEPTED = "accepted"  # the provider has the message: sent (or further)
    RETRY = "retry"  # the provider never took it: safe to try again
    REJECTED = "rejected"  # the provider refused it for good: failed
    UNKNOWN = "unknown"  # the request left and no answer came back: reconcile, never resend


def twilio_create_verdict(http_status: int | None, error_code: int | None = None) -> Verdict:
    """The meaning of a `Messages.json` create answer; `None`: the request left, no answer.

    A create has no idempotency key, so only an answer that proves nothing was created may
    be retried: HTTP 429 (Twilio 20429). A 4xx is a refusal; a 5xx may come after the message
    was created, so it is as uncertain as a timeout.
    """
    if http_status is None:
        return Verdict.UNKNOWN
    if 200 <= http_status < 300:
        return Verdict.ACCEPTED
    if http_status == 429 or error_number(error_code) == 20429:
        return Verdict.RETRY
    if 400 <= http_status < 500:
        return Verdict.REJECTED
    return Verdict.UNKNOWN


def smtp_verdict(reply_code: int | None) -> Verdict:
    """An SMTP refusal: 4xx (or no connection, `None`) is temporary, 5xx is final."""
    if reply_code is None or 400 <= reply_code < 500:
        return Verdict.RETRY
    if 500 <= reply_code < 600:
        return Verdict.REJECTED
    return Verdict.ACCEPTED


@dataclass(frozen=True)
class Attempt:
    """What one provider call came back with."""

    verdict: Verdict
    provider_id: str | None = None
    provider_status: str | None = None  # Twilio's status in the create answer
    error_code: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Change:
    """Where a row moves after a provider event, and what follows from it."""

    status: DeliveryStatus
    refund: bool = False  # give the notification credit back (if the send was paid)
    reason: str = ""
    error_code: str | None = None
    notify: bool = True  # False: a failure the owner need not hear about

    @property
    def tell_owner(self) -> bool:
        """Owners hear about failures in Telegram; a delivery shows on the envelope card."""
        return self.status is DeliveryStatus.FAILED and self.notify


_SENT_STATUSES = frozenset({"queued", "accepted", "scheduled", "sending", "sent"})
_DELIVERED_STATUSES = frozenset({"delivered", "read"})


def after_provider_status(
    channel: Channel, provider_status: str, error_code: str | int | None = None
) -> Change | None:
    """Twilio's message status (create answer, callback or lookup) as an outbox move.

    None for statuses that say nothing about an outbound message (receiving, received, ...).
    """
    status = provider_status.strip().lower()
    code = None if error_number(error_code) is None else str(error_number(error_code))
    if status in _SENT_STATUSES:
        return Change(DeliveryStatus.SENT, error_code=code)
    if status in _DELIVERED_STATUSES:
        return Change(DeliveryStatus.DELIVERED, error_code=code)
    if status in ("failed", "canceled"):
        # Twilio does not bill a failed or canceled message: the credit goes back.
        reason = reason_for(code, REASON_REJECTED)
        return Change(DeliveryStatus.FAILED, refund=True, reason=reason, error_code=code)
    if status == "undelivered":
        # The carrier bills an undelivered SMS (Twilio passes that on), so its credit is
        # spent; WhatsApp does not bill an undelivered message, so its credit goes back.
        return Change(
            DeliveryStatus.FAILED,
            refund=channel is Channel.WHATSAPP,
            reason=reason_for(code, REASON_UNDELIVERED),
            error_code=code,
        )
    return None


def after_attempt(channel: Channel, attempt: Attempt) -> Change | None:
    """The outbox move for one provider call; None for RETRY (the caller reschedules)."""
    if attempt.verdict is Verdict.ACCEPTED:
        status = attempt.provider_status or "sent"
        return after_provider_status(channel, status, attempt.error_code) or Change(
            DeliveryStatus.SENT
        )
    if attempt.verdict is Verdict.REJECTED:
        fallback = REASON_SMTP_REJECTED if channel is Channel.EMAIL else REASON_REJECTED
        return Change(
            DeliveryStatus.FAILED,
            refund=True,
            reason=attempt.reason or reason_for(attempt.error_code, fallback),
            error_code=attempt.error_code,
        )
    if attempt.verdict is Verdict.UNKNOWN:
        return Change(DeliveryStatus.UNKNOWN, error_code=attempt.error_code)
    return None


def gave_up(channel: Channel, attempt: Attempt) -> Change:
    """A RETRY that ran out of tries: nothing was sent, so a paid send is refunded."""
    reason = REASON_SMTP_UNAVAILABLE if channel is Channel.EMAIL else REASON_PROVIDER_UNAVAILABLE
    return Change(DeliveryStatus.FAILED, refund=True, reason=reason, error_code=attempt.error_code)


UNCONFIRMED = Change(DeliveryStatus.FAILED, refund=True, reason=REASON_UNCONFIRMED)


def not_sendable(channel: Channel) -> Change:
    """The signer signed or the envelope moved on before the send: nothing goes out.

    A paid send is refunded and the owner told why; a free e-mail just stops quietly.
    """
    return Change(DeliveryStatus.FAILED, refund=True, reason=REASON_STALE, notify=channel.is_paid)


# Carriers report within minutes; a `sent` paid message still without a final status this long
# after it left is looked up (the outbox schedules it when the row becomes `sent`).
SENT_FIRST_CHECK = timedelta(hours=2)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long leases last and when a send or a reconciliation is tried again."""

    # A claimed row that was not marked `sending` within this time is claimable again.
    claim_lease: timedelta = timedelta(minutes=2)
    # A `sending` row older than this is `unknown`; it must exceed the create timeout plus
    # the time 429 / connection-refused retries may take (see `twilio_retry_timeout`).
    send_lease: timedelta = timedelta(minutes=2)
    twilio_create_attempts: int = 4
    twilio_retry_timeout: timedelta = timedelta(seconds=30)
    email_retry_delays: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
    )
    reconcile_first_delay: timedelta = timedelta(seconds=15)
    reconcile_max_delay: timedelta = timedelta(minutes=15)
    reconcile_give_up: timedelta = timedelta(hours=1)
    # A listed message counts as ours if Twilio created it at most this long before the row.
    lookup_skew: timedelta = timedelta(minutes=2)
    # A `sent` SMS or WhatsApp whose final status never came (a lost callback) is looked up
    # by SID after `SENT_FIRST_CHECK`, then every `sent_check_every`, until `sent_give_up`.
    sent_check_every: timedelta = timedelta(hours=6)
    sent_give_up: timedelta = timedelta(hours=72)

    def email_retry_at(self, attempts: int, now: datetime) -> datetime | None:
        """When to try an e-mail again after its `attempts`-th temporary failure; None: stop."""
        if attempts < 1 or attempts > len(self.email_retry_delays):
            return None
        return now + self.email_retry_delays[attempts - 1]

    def sent_check_at(self, sent_since: datetime, now: datetime) -> datetime | None:
        """The next lookup of a `sent` row still without a final status; None: stop looking
        (it stays `sent`: Twilio took it, and no status says it failed)."""
        if now - sent_since >= self.sent_give_up:
            return None
        return min(now + self.sent_check_every, sent_since + self.sent_give_up)

    def reconcile_at(self, unknown_since: datetime, now: datetime) -> datetime | None:
        """The next lookup of an `unknown` row: waits double with its age; None: give up."""
        age = now - unknown_since
        if age >= self.reconcile_give_up:
            return None
        delay = min(max(age, self.reconcile_first_delay), self.reconcile_max_delay)
        return min(now + delay, unknown_since + self.reconcile_give_up)
