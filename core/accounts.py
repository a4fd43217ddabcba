"""Accounts, their users and roles, and who may see which envelope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

DEFAULT_TIMEZONE = "America/Sao_Paulo"


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    plan_code: str
    timezone: str
    credits: int
    notification_credits: int
    plan_renews_at: datetime | None
    created_at: datetime
    language: str = "pt-BR"


@dataclass(frozen=True)
class User:
    id: int
    account_id: int
    role: Role
    name: str
    telegram_user_id: int | None
    language: str | None = None
    created_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see(self, envelope_account_id: int, envelope_created_by: int | None) -> bool:
        """Admins see every envelope of their account; members only those they created."""
        if envelope_account_id != self.account_id:
            return False
        return self.is_admin or envelope_created_by == self.id
