"""The plan catalogue, notification packs and seal pricing: configuration with defaults."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime

from core.errors import InvalidInput

STARTING_NOTIFICATION_CREDITS = 5


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    monthly_credits: int | None  # None: custom, agreed per contract
    monthly_notification_credits: int
    cumulative: bool
    company: bool


@dataclass(frozen=True)
class NotificationPack:
    code: str
    notification_credits: int
    price_cents: int  # BRL cents; shown to the owner before "Adquirir"


@dataclass(frozen=True)
class SealPricing:
    """Rule for a seal quote when the platform did not quote one."""

    base: int = 1
    per_extra_document: int = 0
    icp_per_signer: int = 1

    def seal_credits(self, documents: int) -> int:
        return self.base + self.per_extra_document * max(0, documents - 1)

    def icp_credits(self, signers: int) -> int:
        return self.icp_per_signer * signers


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan("pessoa-fisica", "Pessoa Física", 20, 0, cumulative=False, company=False),
    Plan("essencial", "Essencial", 30, 0, cumulative=True, company=True),
    Plan("profissional", "Profissional", 120, 0, cumulative=True, company=True),
    Plan("empresarial", "Empresarial", 250, 0, cumulative=True, company=True),
    Plan("personalizado", "Personalizado", None, 0, cumulative=True, company=True),
)

DEFAULT_PACKS: tuple[NotificationPack, ...] = (
    NotificationPack("notif-10", 10, 1490),
    NotificationPack("notif-50", 50, 5990),
    NotificationPack("notif-200", 200, 19990),
)


@dataclass(frozen=True)
class Catalogue:
    plans: tuple[Plan, ...] = DEFAULT_PLANS
    packs: tuple[NotificationPack, ...] = DEFAULT_PACKS
    pricing: SealPricing = field(default_factory=SealPricing)
    starting_notification_credits: int = STARTING_NOTIFICATION_CREDITS

    def plan(self, code: str) -> Plan:
        for plan in self.plans:
            if plan.code == code:
                return plan
        known = ", ".join(p.code for p in self.plans)
        raise InvalidInput(f"unknown plan {code!r}; known plans: {known}", field="plan", value=code)

    def pack(self, code: str) -> NotificationPack:
        for pack in self.packs:
            if pack.code == code:
                return pack
        raise InvalidInput(f"unknown notification pack {code!r}", field="pack", value=code)


def add_months(moment: datetime, months: int) -> datetime:
    """Same day next month(s), clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
