"""Notification channels, their quotes (SMS per segment), cooldowns and the outbox row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.ledger import Reason


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"

    @property
    def is_paid(self) -> bool:
        return self is not Channel.EMAIL

    @property
    def needs_phone(self) -> bool:
        return self is not Channel.EMAIL

    @property
    def reason(self) -> Reason:
        return Reason.SMS if self is Channel.SMS else Reason.WHATSAPP


class Kind(StrEnum):
    SIGNATURE_REQUEST = "signature_request"  # sent by seal and unblock
    RESEND = "resend"  # asked for by the owner
    AUTO_RESEND = "auto_resend"  # the scheduler's free e-mail resend


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.UNKNOWN: 2,
    DeliveryStatus.SENT: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.FAILED: 4,
}


def may_move(current: DeliveryStatus, new: DeliveryStatus) -> bool:
    """Statuses only move forward; a final status never changes."""
    return not current.is_final and new.rank > current.rank


DEFAULT_COOLDOWN = timedelta(minutes=1)

# GSM 03.38 basic character set and its extension table (extension characters cost two).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSegments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def sms_segments(text: str) -> SmsSegments:
    """Count SMS segments: GSM-7 160/153 septets, otherwise UCS-2 70/67 code units."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        sizes = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        sizes = [len(ch.encode("utf-16-le", "surrogatepass")) // 2 for ch in text]
        single, multi, encoding = 70, 67, "UCS-2"
    units = sum(sizes)
    if units <= single:
        return SmsSegments(encoding, units, 1)
    # An escape pair or a surrogate pair is never split: it moves whole to the next segment.
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SmsSegments(encoding, units, segments)


@dataclass(frozen=True)
class NotificationQuote:
    channel: Channel
    cost: int  # notification credits; 0 for e-mail
    segments: int  # 1 unless an SMS text needs more
    text: str  # SMS body; empty for e-mail and WhatsApp (a template)


def quote(channel: Channel, sms_text: str = "") -> NotificationQuote:
    """What a send costs: e-mail 0, WhatsApp 1, SMS 1 per segment of the actual text."""
    if channel is Channel.EMAIL:
        return NotificationQuote(channel, 0, 1, "")
    if channel is Channel.WHATSAPP:
        return NotificationQuote(channel, 1, 1, "")
    seg = sms_segments(sms_text)
    return NotificationQuote(channel, seg.segments, seg.segments, sms_text)


@dataclass(frozen=True)
class Notification:
    """One outbox row: a send that is charged (if paid) in the transaction that queued it."""

    id: int
    account_id: int
    envelope_id: int
    signer_id: int
    channel: Channel
    kind: Kind
    destination: str
    cost: int
    segments: int
    body: str
    status: DeliveryStatus
    idempotency_key: str
    requested_by: int | None
    provider_id: str | None
    error_code: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
