"""Ports: what the use cases need from storage and the outside world, as Protocols."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from core.accounts import Account, Role, User
from core.envelopes import Envelope, EnvelopeStatus
from core.ledger import Balances, EntryDraft, LedgerEntry, Pool
from core.linking import LinkToken
from core.notifications import Channel, DeliveryStatus, Kind, Notification


class AccountRepository(Protocol):
    def add(
        self,
        *,
        name: str,
        plan_code: str,
        timezone: str,
        language: str,
        plan_renews_at: datetime | None,
        now: datetime,
    ) -> Account: ...
    def get(self, account_id: int) -> Account | None: ...
    def list_all(self) -> list[Account]: ...
    def set_plan(self, account_id: int, plan_code: str, renews_at: datetime | None) -> None: ...


class UserRepository(Protocol):
    def add(
        self,
        *,
        account_id: int,
        role: Role,
        name: str,
        telegram_user_id: int | None,
        language: str | None,
        now: datetime,
    ) -> User: ...
    def get(self, user_id: int) -> User | None: ...
    def by_telegram(self, telegram_user_id: int) -> User | None: ...
    def set_telegram(self, user_id: int, telegram_user_id: int | None) -> None: ...
    def set_language(self, user_id: int, language: str | None) -> None: ...


class LinkTokenRepository(Protocol):
    def add(self, token: LinkToken) -> None: ...
    def get(self, token_hash: str) -> LinkToken | None: ...
    def mark_used(self, token_hash: str, user_id: int, now: datetime) -> bool:
        """Conditional: True only for the one caller that found it unused."""
        ...


@dataclass(frozen=True)
class EnvelopeQuery:
    account_id: int
    created_by: int | None = None  # members see only their own
    statuses: tuple[EnvelopeStatus, ...] = ()
    search: str = ""
    expires_before: datetime | None = None
    expires_after: datetime | None = None
    order_by_deadline: bool = False
    limit: int = 8
    offset: int = 0


class EnvelopeRepository(Protocol):
    def add(self, envelope: Envelope, now: datetime) -> Envelope: ...
    def get(self, envelope_id: int) -> Envelope | None: ...
    def get_by_ref(self, account_id: int, ref: str) -> Envelope | None: ...
    def find_by_ref(self, ref: str) -> list[Envelope]: ...
    def save(self, envelope: Envelope, now: datetime) -> None:
        """Write the aggregate back; raises Conflict if its version moved meanwhile."""
        ...

    def replace(self, envelope: Envelope, now: datetime) -> None:
        """Rewrite fields, documents and signers (import update); Conflict on version."""
        ...

    def query(self, q: EnvelopeQuery) -> list[Envelope]: ...
    def count(self, q: EnvelopeQuery) -> int: ...
    def count_by_status(self, account_id: int, created_by: int | None) -> dict[str, int]: ...


class LedgerRepository(Protocol):
    def append(self, entry: EntryDraft, now: datetime) -> bool:
        """Insert unless the idempotency key exists (then False, nothing written)."""
        ...

    def debit(self, account_id: int, pool: Pool, amount: int) -> bool:
        """Conditional `balance = balance - amount WHERE balance >= amount`: one row or False."""
        ...

    def credit(self, account_id: int, pool: Pool, amount: int) -> None: ...
    def by_key(self, idempotency_key: str) -> LedgerEntry | None: ...
    def balances(self, account_id: int) -> Balances: ...
    def history(self, account_id: int, limit: int, offset: int) -> list[LedgerEntry]: ...
    def count(self, account_id: int) -> int: ...


@dataclass(frozen=True)
class NotificationDraft:
    account_id: int
    envelope_id: int
    signer_id: int
    channel: Channel
    kind: Kind
    destination: str
    cost: int
    segments: int
    body: str
    idempotency_key: str
    requested_by: int | None


class NotificationRepository(Protocol):
    def add(self, draft: NotificationDraft, now: datetime) -> Notification | None:
        """Queue a send; None when the idempotency key was already used."""
        ...

    def get(self, notification_id: int) -> Notification | None: ...
    def by_key(self, idempotency_key: str) -> Notification | None: ...
    def last_requested_at(self, signer_id: int, channel: Channel) -> datetime | None: ...
    def paid_since(self, account_id: int, since: datetime) -> int: ...
    def set_status(
        self,
        notification_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        error_code: str | None = None,
        provider_id: str | None = None,
    ) -> bool:
        """Move forward only; False when the move would go backwards or stay put."""
        ...

    def for_envelope(self, envelope_id: int) -> list[Notification]: ...


class UnitOfWork(Protocol):
    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def link_tokens(self) -> LinkTokenRepository: ...
    @property
    def envelopes(self) -> EnvelopeRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def notifications(self) -> NotificationRepository: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> UnitOfWork:
        """A fresh unit of work; `write=False` may read without taking the write lock."""
        ...


class PhoneBook(Protocol):
    """Phone numbers: parse to E.164 (Brazil by default), tell mobiles and regions apart."""

    def normalize(self, raw: str) -> str:
        """E.164 or InvalidInput (no DDD, old 8-digit mobile, not a number)."""
        ...

    def is_mobile(self, e164: str) -> bool: ...
    def region(self, e164: str) -> str:
        """ISO region code, e.g. "BR"."""
        ...
