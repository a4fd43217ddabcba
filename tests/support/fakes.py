"""In-memory fakes of core's ports, honest enough that a use case test on them means something."""

from __future__ import annotations

import copy
import itertools
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self

from core.accounts import Account, Role, User
from core.clock import Clock, FixedClock
from core.envelopes import Envelope
from core.errors import Conflict, InvalidInput
from core.ledger import Balances, EntryDraft, LedgerEntry, Pool
from core.linking import LinkToken
from core.notifications import Channel, DeliveryStatus, Notification, may_move
from core.plans import Catalogue
from core.ports import EnvelopeQuery, NotificationDraft
from core.services import Lacre, Policy


class FakeIntegrityError(Exception):
    """What the database would refuse: a unique key twice, a balance below zero."""


@dataclass
class _Tables:
    """One snapshot of every table; a unit of work edits its own deep copy."""

    accounts: dict[int, Account] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    link_tokens: dict[str, LinkToken] = field(default_factory=dict)
    envelopes: dict[int, Envelope] = field(default_factory=dict)
    ledger: dict[int, LedgerEntry] = field(default_factory=dict)
    notifications: dict[int, Notification] = field(default_factory=dict)


class FakeDatabase:
    """The committed state. Id sequences live outside transactions, as real sequences do."""

    def __init__(self) -> None:
        self.committed = _Tables()
        self.commits = 0
        self._sequences: dict[str, itertools.count[int]] = {}

    def next_id(self, table: str) -> int:
        return next(self._sequences.setdefault(table, itertools.count(1)))

    def snapshot(self) -> _Tables:
        """A copy of what is committed, for before/after comparisons in tests."""
        return copy.deepcopy(self.committed)


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _t(self) -> _Tables:
        return self._uow.tables

    def _writing(self) -> _Tables:
        if not self._uow.write:
            raise AssertionError("a read-only unit of work must not write")
        return self._uow.tables


class FakeAccountRepository(_Repo):
    def add(
        self,
        *,
        name: str,
        plan_code: str,
        timezone: str,
        language: str,
        plan_renews_at: datetime | None,
        now: datetime,
    ) -> Account:
        account = Account(
            self._uow.db.next_id("accounts"),
            name,
            plan_code,
            timezone,
            0,
            0,
            plan_renews_at,
            now,
            language,
        )
        self._writing().accounts[account.id] = account
        return account

    def get(self, account_id: int) -> Account | None:
        return self._t.accounts.get(account_id)

    def list_all(self) -> list[Account]:
        return [self._t.accounts[i] for i in sorted(self._t.accounts)]

    def set_plan(self, account_id: int, plan_code: str, renews_at: datetime | None) -> None:
        tables = self._writing()
        if account_id in tables.accounts:
            tables.accounts[account_id] = replace(
                tables.accounts[account_id], plan_code=plan_code, plan_renews_at=renews_at
            )


class FakeUserRepository(_Repo):
    def add(
        self,
        *,
        account_id: int,
        role: Role,
        name: str,
        telegram_user_id: int | None,
        language: str | None,
        now: datetime,
    ) -> User:
        tables = self._writing()
        self._unique_telegram(telegram_user_id)
        if account_id not in tables.accounts:
            raise FakeIntegrityError(f"no account {account_id}")
        user = User(
            self._uow.db.next_id("users"), account_id, role, name, telegram_user_id, language, now
        )
        tables.users[user.id] = user
        return user

    def get(self, user_id: int) -> User | None:
        return self._t.users.get(user_id)

    def by_telegram(self, telegram_user_id: int) -> User | None:
        for user in self._t.users.values():
            if user.telegram_user_id == telegram_user_id:
                return user
        return None

    def set_telegram(self, user_id: int, telegram_user_id: int | None) -> None:
        tables = self._writing()
        self._unique_telegram(telegram_user_id, but=user_id)
        if user_id in tables.users:
            tables.users[user_id] = replace(
                tables.users[user_id], telegram_user_id=telegram_user_id
            )

    def set_language(self, user_id: int, language: str | None) -> None:
        tables = self._writing()
        if user_id in tables.users:
            tables.users[user_id] = replace(tables.users[user_id], language=language)

    def _unique_telegram(self, telegram_user_id: int | None, but: int | None = None) -> None:
        if telegram_user_id is None:
            return
        holder = self.by_telegram(telegram_user_id)
        if holder is not None and holder.id != but:
            raise FakeIntegrityError(f"telegram user {telegram_user_id} is linked already")


class FakeLinkTokenRepository(_Repo):
    def add(self, token: LinkToken) -> None:
        tables = self._writing()
        if token.token_hash in tables.link_tokens:
            raise FakeIntegrityError("token hash exists")
        tables.link_tokens[token.token_hash] = token

    def get(self, token_hash: str) -> LinkToken | None:
        return self._t.link_tokens.get(token_hash)

    def mark_used(self, token_hash: str, user_id: int, now: datetime) -> bool:
        tables = self._writing()
        token = tables.link_tokens.get(token_hash)
        if token is None or token.used_at is not None:
            return False
        tables.link_tokens[token_hash] = replace(token, used_at=now, used_by_user_id=user_id)
        return True


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class FakeEnvelopeRepository(_Repo):
    """Stores copies: a loaded envelope changes nothing until it is saved, as with SQL."""

    def add(self, envelope: Envelope, now: datetime) -> Envelope:
        tables = self._writing()
        if self.get_by_ref(envelope.account_id, envelope.ref) is not None:
            raise FakeIntegrityError(f"ref {envelope.ref} exists in account")
        envelope.id = self._uow.db.next_id("envelopes")
        envelope.version = 0
        for signer in envelope.signers:
            signer.id = self._uow.db.next_id("signers")
        tables.envelopes[envelope.id] = copy.deepcopy(envelope)
        return envelope

    def get(self, envelope_id: int) -> Envelope | None:
        found = self._t.envelopes.get(envelope_id)
        return copy.deepcopy(found) if found is not None else None

    def get_by_ref(self, account_id: int, ref: str) -> Envelope | None:
        for env in self._t.envelopes.values():
            if env.account_id == account_id and env.ref == ref:
                return copy.deepcopy(env)
        return None

    def find_by_ref(self, ref: str) -> list[Envelope]:
        return [copy.deepcopy(e) for e in self._t.envelopes.values() if e.ref == ref]

    def save(self, envelope: Envelope, now: datetime) -> None:
        stored = self._bump(envelope)
        # Like the SQL repository: envelope fields and signer statuses, nothing structural.
        signers = copy.deepcopy(stored.signers)
        for s in signers:
            for new in envelope.signers:
                if new.id == s.id:
                    s.status, s.signed_at = new.status, new.signed_at
        updated = copy.deepcopy(envelope)
        updated.documents, updated.signers = stored.documents, signers
        self._t.envelopes[stored.id or 0] = updated

    def replace(self, envelope: Envelope, now: datetime) -> None:
        stored = self._bump(envelope)
        for signer in envelope.signers:
            if signer.id is None:
                signer.id = self._uow.db.next_id("signers")
        self._t.envelopes[stored.id or 0] = copy.deepcopy(envelope)

    def query(self, q: EnvelopeQuery) -> list[Envelope]:
        found = self._matching(q)
        if q.order_by_deadline:
            # NULL deadlines last, as PostgreSQL sorts them.
            found.sort(
                key=lambda e: (
                    e.expires_at is None,
                    e.expires_at.timestamp() if e.expires_at else 0.0,
                    e.id or 0,
                )
            )
        else:
            found.sort(key=lambda e: -(e.id or 0))
        return [copy.deepcopy(e) for e in found[q.offset : q.offset + q.limit]]

    def count(self, q: EnvelopeQuery) -> int:
        return len(self._matching(q))

    def count_by_status(self, account_id: int, created_by: int | None) -> dict[str, int]:
        return dict(
            Counter(
                e.status.value
                for e in self._t.envelopes.values()
                if e.account_id == account_id and (created_by is None or e.created_by == created_by)
            )
        )

    def _matching(self, q: EnvelopeQuery) -> list[Envelope]:
        term = _fold(q.search.strip())
        out = []
        for e in self._t.envelopes.values():
            if e.account_id != q.account_id:
                continue
            if q.created_by is not None and e.created_by != q.created_by:
                continue
            if q.statuses and e.status not in q.statuses:
                continue
            if q.expires_after is not None and (
                e.expires_at is None or e.expires_at <= q.expires_after
            ):
                continue
            if q.expires_before is not None and (
                e.expires_at is None or e.expires_at > q.expires_before
            ):
                continue
            haystack = _fold(" ".join([e.title, e.ref, *(s.name for s in e.signers)]))
            if term and term not in haystack:
                continue
            out.append(e)
        return out

    def _bump(self, envelope: Envelope) -> Envelope:
        tables = self._writing()
        stored = tables.envelopes.get(envelope.id or 0)
        if stored is None or stored.version != envelope.version:
            raise Conflict("the envelope changed meanwhile", what="envelope", id=envelope.id)
        envelope.version += 1
        return stored


class FakeLedgerRepository(_Repo):
    """Append-only entries plus the cached balances on the account rows."""

    def append(self, entry: EntryDraft, now: datetime) -> bool:
        tables = self._writing()
        if any(e.idempotency_key == entry.idempotency_key for e in tables.ledger.values()):
            return False
        if entry.account_id not in tables.accounts:
            raise FakeIntegrityError(f"no account {entry.account_id}")
        new_id = self._uow.db.next_id("ledger")
        tables.ledger[new_id] = LedgerEntry(
            new_id,
            entry.account_id,
            entry.pool,
            entry.amount,
            entry.reason,
            entry.idempotency_key,
            entry.envelope_id,
            entry.notification_id,
            entry.actor_user_id,
            entry.note[:500],
            now,
        )
        return True

    def debit(self, account_id: int, pool: Pool, amount: int) -> bool:
        tables = self._writing()
        account = tables.accounts.get(account_id)
        if account is None or _balance(account, pool) < amount:
            return False
        tables.accounts[account_id] = _with_balance(account, pool, _balance(account, pool) - amount)
        return True

    def credit(self, account_id: int, pool: Pool, amount: int) -> None:
        tables = self._writing()
        account = tables.accounts.get(account_id)
        if account is None:
            return
        after = _balance(account, pool) + amount
        if after < 0:
            raise FakeIntegrityError("CHECK balance >= 0")
        tables.accounts[account_id] = _with_balance(account, pool, after)

    def by_key(self, idempotency_key: str) -> LedgerEntry | None:
        for entry in self._t.ledger.values():
            if entry.idempotency_key == idempotency_key:
                return entry
        return None

    def balances(self, account_id: int) -> Balances:
        account = self._t.accounts.get(account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")  # SQL's .one() raises too
        return Balances(account.credits, account.notification_credits)

    def history(self, account_id: int, limit: int, offset: int) -> list[LedgerEntry]:
        mine = [e for e in self._t.ledger.values() if e.account_id == account_id]
        mine.sort(key=lambda e: -e.id)
        return mine[offset : offset + limit]

    def count(self, account_id: int) -> int:
        return sum(1 for e in self._t.ledger.values() if e.account_id == account_id)

    # -- for tests ---------------------------------------------------------------------------
    def entries(self, account_id: int | None = None) -> list[LedgerEntry]:
        return [
            e for e in self._t.ledger.values() if account_id is None or e.account_id == account_id
        ]


def _balance(account: Account, pool: Pool) -> int:
    return account.credits if pool is Pool.CREDITS else account.notification_credits


def _with_balance(account: Account, pool: Pool, value: int) -> Account:
    if pool is Pool.CREDITS:
        return replace(account, credits=value)
    return replace(account, notification_credits=value)


class FakeNotificationRepository(_Repo):
    def add(self, draft: NotificationDraft, now: datetime) -> Notification | None:
        tables = self._writing()
        if self.by_key(draft.idempotency_key) is not None:
            return None
        new_id = self._uow.db.next_id("notifications")
        row = Notification(
            new_id,
            draft.account_id,
            draft.envelope_id,
            draft.signer_id,
            draft.channel,
            draft.kind,
            draft.destination,
            draft.cost,
            draft.segments,
            draft.body,
            DeliveryStatus.QUEUED,
            draft.idempotency_key,
            draft.requested_by,
            None,
            None,
            0,
            now,
            now,
            next_attempt_at=now,
        )
        tables.notifications[new_id] = row
        return row

    def get(self, notification_id: int) -> Notification | None:
        return self._t.notifications.get(notification_id)

    def by_key(self, idempotency_key: str) -> Notification | None:
        for row in self._t.notifications.values():
            if row.idempotency_key == idempotency_key:
                return row
        return None

    def last_requested_at(self, signer_id: int, channel: Channel) -> datetime | None:
        times = [
            n.created_at
            for n in self._t.notifications.values()
            if n.signer_id == signer_id and n.channel is channel
        ]
        return max(times, default=None)

    def paid_since(self, account_id: int, since: datetime) -> int:
        return sum(
            1
            for n in self._t.notifications.values()
            if n.account_id == account_id and n.created_at >= since and n.cost > 0
        )

    def set_status(
        self,
        notification_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        error_code: str | None = None,
        provider_id: str | None = None,
    ) -> bool:
        tables = self._writing()
        row = tables.notifications.get(notification_id)
        if row is None or not may_move(row.status, status):
            return False
        tables.notifications[notification_id] = replace(
            row,
            status=status,
            updated_at=now,
            error_code=error_code[:40] if error_code is not None else row.error_code,
            provider_id=provider_id if provider_id is not None else row.provider_id,
        )
        return True

    def for_envelope(self, envelope_id: int) -> list[Notification]:
        return [n for _, n in sorted(self._t.notifications.items()) if n.envelope_id == envelope_id]


class FakeUnitOfWork:
    """Works on a private copy of the committed tables: commit publishes it, rollback and
    leaving without commit throw it away."""

    def __init__(self, db: FakeDatabase, *, write: bool = True) -> None:
        self.db = db
        self.write = write
        self._tables: _Tables | None = None
        self.accounts = FakeAccountRepository(self)
        self.users = FakeUserRepository(self)
        self.link_tokens = FakeLinkTokenRepository(self)
        self.envelopes = FakeEnvelopeRepository(self)
        self.ledger = FakeLedgerRepository(self)
        self.notifications = FakeNotificationRepository(self)

    @property
    def tables(self) -> _Tables:
        if self._tables is None:
            raise AssertionError("use the unit of work inside `with`")
        return self._tables

    def __enter__(self) -> Self:
        self._tables = copy.deepcopy(self.db.committed)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tables = None

    def commit(self) -> None:
        self.db.committed = copy.deepcopy(self.tables)
        self.db.commits += 1

    def rollback(self) -> None:
        self._tables = copy.deepcopy(self.db.committed)


class FakeUnitOfWorkFactory:
    """What `Lacre` receives as `uow`; counts the units of work it hands out."""

    def __init__(self, db: FakeDatabase | None = None) -> None:
        self.db = db or FakeDatabase()
        self.opened = 0

    def __call__(self, *, write: bool = True) -> FakeUnitOfWork:
        self.opened += 1
        return FakeUnitOfWork(self.db, write=write)


_COUNTRY_CODES = {"55": "BR", "1": "US", "351": "PT", "54": "AR", "44": "GB"}


class FakePhoneBook:
    """Brazilian numbers by the rules of DOMAIN.md (DDD required, mobiles are 9 digits
    starting with 9) and a handful of country codes; `landlines` marks foreign landlines."""

    def __init__(self, landlines: frozenset[str] = frozenset()) -> None:
        self.landlines = landlines

    def normalize(self, raw: str) -> str:
        text = raw.strip()
        digits = "".join(ch for ch in text if ch.isdigit())
        if not digits or any(ch.isalpha() for ch in text):
            raise InvalidInput(f"{raw!r} is not a phone number", field="phone")
        if text.startswith("+"):
            if self._country(digits) is None or not 8 <= len(digits) <= 15:
                raise InvalidInput(f"{raw!r} is not a valid phone number", field="phone")
            e164 = "+" + digits
            if e164.startswith("+55"):
                self._check_brazil(raw, digits[2:])
            return e164
        if len(digits) in (8, 9):
            raise InvalidInput(f"{raw!r} has no area code (DDD)", field="phone", reason="no_ddd")
        national = digits.lstrip("0")
        if national.startswith("55") and len(national) in (12, 13):
            national = national[2:]
        self._check_brazil(raw, national)
        return "+55" + national

    def is_mobile(self, e164: str) -> bool:
        if e164.startswith("+55"):
            return len(e164) == 14 and e164[5] == "9"
        return e164 not in self.landlines

    def region(self, e164: str) -> str:
        return self._country(e164.lstrip("+")) or "ZZ"

    @staticmethod
    def _country(digits: str) -> str | None:
        for size in (1, 2, 3):
            if digits[:size] in _COUNTRY_CODES:
                return _COUNTRY_CODES[digits[:size]]
        return None

    @staticmethod
    def _check_brazil(raw: str, national: str) -> None:
        valid = national[:1] != "0" and (
            (len(national) == 11 and national[2] == "9")
            or (len(national) == 10 and national[2] in "2345")
        )
        if not valid:
            raise InvalidInput(f"{raw!r} is not a valid phone number", field="phone")


def fake_lacre(
    clock: Clock | None = None,
    *,
    db: FakeDatabase | None = None,
    phones: FakePhoneBook | None = None,
    catalogue: Catalogue | None = None,
    policy: Policy | None = None,
) -> tuple[Lacre, FakeUnitOfWorkFactory]:
    """The real use cases over the fakes; the factory gives tests a way into the tables."""
    factory = FakeUnitOfWorkFactory(db)
    lacre = Lacre(
        uow=factory,
        clock=clock or FixedClock(datetime.fromisoformat("2026-11-27T12:00:00+00:00")),
        phones=phones or FakePhoneBook(),
        catalogue=catalogue or Catalogue(),
        policy=policy or Policy(),
    )
    return lacre, factory
