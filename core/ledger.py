"""The two credit pools and the append-only ledger that moves them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Pool(StrEnum):
    CREDITS = "credits"
    NOTIFICATION = "notification"


class Reason(StrEnum):
    PLAN_GRANT = "plan_grant"
    PLAN_EXPIRY = "plan_expiry"
    PURCHASE = "purchase"
    SEAL = "seal"
    ICP = "icp"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


# Debits that spend a user's money on an action: each needs an authorised actor (invariant 6).
PAID_REASONS = frozenset({Reason.SEAL, Reason.ICP, Reason.SMS, Reason.WHATSAPP})

# Which pool each reason may touch; one pool never pays for the other.
REASON_POOLS: dict[Reason, frozenset[Pool]] = {
    Reason.PLAN_GRANT: frozenset({Pool.CREDITS, Pool.NOTIFICATION}),
    Reason.PLAN_EXPIRY: frozenset({Pool.CREDITS}),
    Reason.PURCHASE: frozenset({Pool.CREDITS, Pool.NOTIFICATION}),
    Reason.SEAL: frozenset({Pool.CREDITS}),
    Reason.ICP: frozenset({Pool.CREDITS}),
    Reason.SMS: frozenset({Pool.NOTIFICATION}),
    Reason.WHATSAPP: frozenset({Pool.NOTIFICATION}),
    Reason.REFUND: frozenset({Pool.NOTIFICATION, Pool.CREDITS}),
    Reason.ADJUSTMENT: frozenset({Pool.CREDITS, Pool.NOTIFICATION}),
}


@dataclass(frozen=True)
class EntryDraft:
    """A ledger entry about to be written; `amount` is signed (debits are negative)."""

    account_id: int
    pool: Pool
    amount: int
    reason: Reason
    idempotency_key: str
    envelope_id: int | None = None
    notification_id: int | None = None
    actor_user_id: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.amount == 0:
            raise ValueError("a ledger entry moves at least one credit")
        if self.pool not in REASON_POOLS[self.reason]:
            raise ValueError(f"{self.reason} cannot touch the {self.pool} pool")
        if not self.idempotency_key or len(self.idempotency_key) > 200:
            raise ValueError("idempotency key must be 1..200 characters")


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    account_id: int
    pool: Pool
    amount: int
    reason: Reason
    idempotency_key: str
    envelope_id: int | None
    notification_id: int | None
    actor_user_id: int | None
    note: str
    created_at: datetime


@dataclass(frozen=True)
class Balances:
    credits: int
    notification_credits: int

    def of(self, pool: Pool) -> int:
        return self.credits if pool is Pool.CREDITS else self.notification_credits
