"""Repositories of the bot's tables (confirmations, chat state) and its read queries.

Statements are built once, with bound parameters: building a `select()` with joins and labels
costs about ten times what executing it on SQLite costs, and these run on every update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.accounts import Account, Role, User
from core.browse import ChatState, EnvelopeSummary, SignerNotice
from core.confirmations import Action, Confirmation
from core.envelopes import Envelope, EnvelopeStatus
from core.notifications import Channel, DeliveryStatus
from core.ports import EnvelopeQuery
from storage.prepared import Prepared, PreparedWrite
from storage.repositories import (
    SqlEnvelopeRepository,
    accounts,
    envelopes,
    fold,
    ledger,
    notifications,
    signers,
    status_filter,
    users,
)
from storage.tables_bot import ConfirmationRow, TelegramChatRow

confirmations = ConfirmationRow.__table__  # type: ignore[attr-defined]
chats = TelegramChatRow.__table__  # type: ignore[attr-defined]

_c = confirmations.c
_ADD_CONFIRMATION = PreparedWrite(insert(confirmations), [c.name for c in confirmations.c])
_GET_CONFIRMATION = Prepared(select(confirmations).where(_c.nonce == bindparam("nonce")))
_USE_CONFIRMATION = PreparedWrite(
    update(confirmations)
    .where(
        _c.nonce == bindparam("b_nonce"),
        _c.user_id == bindparam("b_user_id"),
        _c.used_at.is_(None),
        _c.expires_at > bindparam("b_now"),
    )
    .values(used_at=bindparam("b_used_at")),
    ("b_nonce", "b_user_id", "b_now", "b_used_at"),
)


class SqlConfirmationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, confirmation: Confirmation) -> None:
        c = confirmation
        _ADD_CONFIRMATION.execute(
            self.conn,
            {
                "nonce": c.nonce,
                "user_id": c.user_id,
                "account_id": c.account_id,
                "action": c.action.value,
                "envelope_id": c.envelope_id,
                "signer_id": c.signer_id,
                "channel": c.channel.value if c.channel else None,
                "quoted_cost": c.quoted_cost,
                "created_at": c.created_at,
                "expires_at": c.expires_at,
                "used_at": None,
            },
        )

    def get(self, nonce: str) -> Confirmation | None:
        r = _GET_CONFIRMATION.first(self.conn, {"nonce": nonce})
        if r is None:
            return None
        return Confirmation(
            r.nonce,
            r.user_id,
            r.account_id,
            Action(r.action),
            r.envelope_id,
            r.signer_id,
            Channel(r.channel) if r.channel else None,
            r.quoted_cost,
            r.created_at,
            r.expires_at,
            r.used_at,
        )

    def mark_used(self, nonce: str, user_id: int, now: datetime) -> bool:
        result = _USE_CONFIRMATION.execute(
            self.conn,
            {"b_nonce": nonce, "b_user_id": user_id, "b_now": now, "b_used_at": now},
        )
        return bool(result.rowcount == 1)


_GET_CHAT = Prepared(select(chats).where(chats.c.telegram_user_id == bindparam("tg")))
_BLOCK = (
    update(chats)
    .where(chats.c.telegram_user_id == bindparam("b_tg"), chats.c.blocked_at.is_(None))
    .values(blocked_at=bindparam("b_at"), updated_at=bindparam("b_at"))
)
_UNBLOCK = (
    update(chats)
    .where(chats.c.telegram_user_id == bindparam("b_tg"), chats.c.blocked_at.is_not(None))
    .values(blocked_at=None, updated_at=bindparam("b_at"))
)


def _chat(r: Any) -> ChatState:
    return ChatState(r.telegram_user_id, r.language, r.blocked_at, r.search)


class SqlChatRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, telegram_user_id: int) -> ChatState | None:
        r = _GET_CHAT.first(self.conn, {"tg": telegram_user_id})
        return _chat(r) if r is not None else None

    def set_language(self, telegram_user_id: int, language: str, now: datetime) -> None:
        self._upsert(telegram_user_id, now, language=language)

    def set_search(self, telegram_user_id: int, term: str, now: datetime) -> None:
        self._upsert(telegram_user_id, now, search=term[:100])

    def mark_blocked(self, telegram_user_id: int, now: datetime) -> bool:
        self._upsert(telegram_user_id, now)
        result = self.conn.execute(_BLOCK, {"b_tg": telegram_user_id, "b_at": now})
        return bool(result.rowcount == 1)

    def clear_blocked(self, telegram_user_id: int, now: datetime) -> bool:
        result = self.conn.execute(_UNBLOCK, {"b_tg": telegram_user_id, "b_at": now})
        return bool(result.rowcount == 1)

    def _upsert(self, telegram_user_id: int, now: datetime, **values: Any) -> None:
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(chats).values(
            telegram_user_id=telegram_user_id, updated_at=now, **values
        )
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[chats.c.telegram_user_id], set_={"updated_at": now, **values}
            )
        )


def _user_account_query() -> Select[Any]:
    a = accounts.c
    return select(
        users,
        a.name.label("account_name"),
        a.plan_code,
        a.timezone,
        a.language.label("account_language"),
        a.credits,
        a.notification_credits,
        a.plan_renews_at,
        a.created_at.label("account_created_at"),
    ).join_from(users, accounts, a.id == users.c.account_id)


_USER_ACCOUNT = Prepared(_user_account_query().where(users.c.id == bindparam("user_id")))
_VIEWER = Prepared(
    _user_account_query()
    .add_columns(chats.c.language.label("chat_language"), chats.c.blocked_at, chats.c.search)
    .join(chats, chats.c.telegram_user_id == users.c.telegram_user_id, isouter=True)
    .where(users.c.telegram_user_id == bindparam("tg"))
)
_e = envelopes.c
_ABOUT = Prepared(
    select(
        _e.id,
        _e.ref,
        _e.title,
        _e.status,
        _e.expires_at,
        select(signers.c.name)
        .where(signers.c.id == bindparam("signer_id"), signers.c.envelope_id == _e.id)
        .scalar_subquery()
        .label("signer_name"),
    ).where(_e.id == bindparam("envelope_id"))
)


_n = notifications.c
_NOTICES = Prepared(
    select(
        _n.signer_id,
        _n.channel,
        _n.status,
        _n.cost,
        select(ledger.c.id)
        .where(ledger.c.idempotency_key == "refund:" + _n.idempotency_key)
        .exists()
        .label("refunded"),
    )
    .where(_n.envelope_id == bindparam("envelope_id"))
    .order_by(_n.id)
)


def _user_of(r: Any) -> User:
    return User(
        r.id, r.account_id, Role(r.role), r.name, r.telegram_user_id, r.language, r.created_at
    )


def _account_of(r: Any) -> Account:
    return Account(
        r.account_id,
        r.account_name,
        r.plan_code,
        r.timezone,
        r.credits,
        r.notification_credits,
        r.plan_renews_at,
        r.account_created_at,
        r.account_language,
    )


_SummaryKey = tuple[tuple[EnvelopeStatus, ...], bool, bool, bool, bool, bool]
_SUMMARIES: dict[_SummaryKey, Prepared] = {}


def _summaries_statement(key: _SummaryKey) -> Select[Any]:
    """The list query for one shape of EnvelopeQuery (same filters as the envelope
    repository's), built once per shape."""
    statuses, by_creator, searching, before, after, by_deadline = key
    stmt = select(_e.id, _e.ref, _e.title, _e.status, _e.expires_at).where(
        _e.account_id == bindparam("account_id")
    )
    if by_creator:
        stmt = stmt.where(_e.created_by == bindparam("created_by"))
    if statuses:
        stmt = stmt.where(status_filter(statuses))
    if after:
        stmt = stmt.where(_e.expires_at > bindparam("after"))
    if before:
        stmt = stmt.where(_e.expires_at <= bindparam("before"))
    if searching:
        stmt = stmt.where(_e.search_text.like(bindparam("pattern"), escape="\\"))
    order = [_e.expires_at.asc(), _e.id.asc()] if by_deadline else [_e.id.desc()]
    return stmt.order_by(*order).limit(bindparam("limit")).offset(bindparam("offset"))


class SqlListingRepository:
    """Read queries of the bot, one statement each (the list is the hot path)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def summaries(self, q: EnvelopeQuery) -> list[EnvelopeSummary]:
        term = fold(q.search.strip())
        key: _SummaryKey = (
            tuple(q.statuses),
            q.created_by is not None,
            bool(term),
            q.expires_before is not None,
            q.expires_after is not None,
            q.order_by_deadline,
        )
        stmt = _SUMMARIES.get(key)
        if stmt is None:
            stmt = _SUMMARIES[key] = Prepared(_summaries_statement(key))
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params = {
            "account_id": q.account_id,
            "created_by": q.created_by,
            "after": q.expires_after,
            "before": q.expires_before,
            "pattern": f"%{escaped}%",
            "limit": q.limit,
            "offset": q.offset,
        }
        rows = stmt.all(self.conn, params)
        return [
            EnvelopeSummary(r.id, r.ref, r.title, EnvelopeStatus(r.status), r.expires_at)
            for r in rows
        ]

    def user_account(self, user_id: int) -> tuple[User, Account] | None:
        row = _USER_ACCOUNT.first(self.conn, {"user_id": user_id})
        return None if row is None else (_user_of(row), _account_of(row))

    def about(self, envelope_id: int, signer_id: int | None) -> tuple[EnvelopeSummary, str] | None:
        r = _ABOUT.first(self.conn, {"envelope_id": envelope_id, "signer_id": signer_id})
        if r is None:
            return None
        summary = EnvelopeSummary(r.id, r.ref, r.title, EnvelopeStatus(r.status), r.expires_at)
        return summary, r.signer_name or ""

    def envelope(self, envelope_id: int) -> Envelope | None:
        """The whole aggregate for the card (what the envelope repository's `get` loads)."""
        return SqlEnvelopeRepository(self.conn).get(envelope_id)

    def notices(self, envelope_id: int) -> dict[int, SignerNotice]:
        """The latest notification per signer, and whether a failed paid one was refunded."""
        latest: dict[int, SignerNotice] = {}
        for n in _NOTICES.all(self.conn, {"envelope_id": envelope_id}):
            latest[n.signer_id] = SignerNotice(  # ordered by id: the last one wins
                Channel(n.channel),
                DeliveryStatus(n.status),
                bool(n.cost > 0 and n.status == DeliveryStatus.FAILED.value and n.refunded),
            )
        return latest

    def viewer(self, telegram_user_id: int) -> tuple[User | None, Account | None, ChatState | None]:
        """The linked user and account (if any) and the chat state, in one statement."""
        row = _VIEWER.first(self.conn, {"tg": telegram_user_id})
        if row is None:
            found = _GET_CHAT.first(self.conn, {"tg": telegram_user_id})
            return None, None, _chat(found) if found else None
        chat = (
            None  # no chat row yet
            if row.search is None
            else ChatState(telegram_user_id, row.chat_language, row.blocked_at, row.search)
        )
        return _user_of(row), _account_of(row), chat
