"""Repositories: the domain's ports over one SQLAlchemy connection, in SQL Core."""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

from core.accounts import Account, Role, User
from core.envelopes import Document, Envelope, EnvelopeStatus, Signer, SignerStatus
from core.errors import Conflict
from core.ledger import Balances, EntryDraft, LedgerEntry, Pool, Reason
from core.linking import LinkToken
from core.notifications import Channel, DeliveryStatus, Kind, Notification, may_move
from core.ports import EnvelopeQuery, NotificationDraft
from storage.prepared import Prepared, PreparedWrite
from storage.tables import (
    AccountRow,
    DocumentRow,
    EnvelopeRow,
    LedgerEntryRow,
    LinkTokenRow,
    NotificationRow,
    SignerRow,
    UserRow,
)

accounts = AccountRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
link_tokens = LinkTokenRow.__table__  # type: ignore[attr-defined]
envelopes = EnvelopeRow.__table__  # type: ignore[attr-defined]
documents = DocumentRow.__table__  # type: ignore[attr-defined]
signers = SignerRow.__table__  # type: ignore[attr-defined]
ledger = LedgerEntryRow.__table__  # type: ignore[attr-defined]
notifications = NotificationRow.__table__  # type: ignore[attr-defined]


def fold(text: str) -> str:
    """Lower-case without accents, so "joao" finds "João" on either database."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Statements on the charge path are built once and get their values at execute time:
# composing `.values(...)` per call cost more than running the statement (bench/ledger.py).
_IGNORING_DUPLICATES: dict[tuple[str, str, str, tuple[str, ...]], PreparedWrite] = {}


def insert_ignoring_duplicates(
    conn: Connection, table: Any, values: dict[str, Any], key: str
) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id: the driver's cursor, whose
    `fetchone()` is None when the key was there already."""
    cache_key = (conn.dialect.name, table.name, key, tuple(values))
    prepared = _IGNORING_DUPLICATES.get(cache_key)
    if prepared is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=[key])
        prepared = _IGNORING_DUPLICATES[cache_key] = PreparedWrite(
            stmt.returning(table.c.id), values
        )
    return prepared.execute(conn, values)


class _Repo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn


# Look-ups every use case makes, built once (see _IGNORING_DUPLICATES).
_ACCOUNT_BY_ID = Prepared(select(accounts).where(accounts.c.id == bindparam("account_id")))
_USER_BY_ID = Prepared(select(users).where(users.c.id == bindparam("user_id")))
_USER_BY_TELEGRAM = Prepared(select(users).where(users.c.telegram_user_id == bindparam("tg")))
_SET_TELEGRAM = (
    update(users).where(users.c.id == bindparam("b_id")).values(telegram_user_id=bindparam("b_tg"))
)
_SET_USER_LANGUAGE = (
    update(users).where(users.c.id == bindparam("b_id")).values(language=bindparam("b_language"))
)


class SqlAccountRepository(_Repo):
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
        new_id = self.conn.execute(
            insert(accounts)
            .values(
                name=name,
                plan_code=plan_code,
                timezone=timezone,
                language=language,
                credits=0,
                notification_credits=0,
                plan_renews_at=plan_renews_at,
                created_at=now,
            )
            .returning(accounts.c.id)
        ).scalar_one()
        account = self.get(new_id)
        assert account is not None
        return account

    def get(self, account_id: int) -> Account | None:
        row = _ACCOUNT_BY_ID.first(self.conn, {"account_id": account_id})
        return _account(row) if row else None

    def list_all(self) -> list[Account]:
        return [_account(r) for r in self.conn.execute(select(accounts).order_by(accounts.c.id))]

    def set_plan(self, account_id: int, plan_code: str, renews_at: datetime | None) -> None:
        self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(plan_code=plan_code, plan_renews_at=renews_at)
        )


def _account(r: Row[Any]) -> Account:
    return Account(
        r.id,
        r.name,
        r.plan_code,
        r.timezone,
        r.credits,
        r.notification_credits,
        r.plan_renews_at,
        r.created_at,
        r.language,
    )


class SqlUserRepository(_Repo):
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
        new_id = self.conn.execute(
            insert(users)
            .values(
                account_id=account_id,
                role=role.value,
                name=name,
                telegram_user_id=telegram_user_id,
                language=language,
                created_at=now,
            )
            .returning(users.c.id)
        ).scalar_one()
        user = self.get(new_id)
        assert user is not None
        return user

    def get(self, user_id: int) -> User | None:
        row = _USER_BY_ID.first(self.conn, {"user_id": user_id})
        return _user(row) if row else None

    def by_telegram(self, telegram_user_id: int) -> User | None:
        row = _USER_BY_TELEGRAM.first(self.conn, {"tg": telegram_user_id})
        return _user(row) if row else None

    def set_telegram(self, user_id: int, telegram_user_id: int | None) -> None:
        self.conn.execute(_SET_TELEGRAM, {"b_id": user_id, "b_tg": telegram_user_id})

    def set_language(self, user_id: int, language: str | None) -> None:
        self.conn.execute(_SET_USER_LANGUAGE, {"b_id": user_id, "b_language": language})


def _user(r: Row[Any]) -> User:
    return User(
        r.id, r.account_id, Role(r.role), r.name, r.telegram_user_id, r.language, r.created_at
    )


class SqlLinkTokenRepository(_Repo):
    def add(self, token: LinkToken) -> None:
        self.conn.execute(
            insert(link_tokens).values(
                token_hash=token.token_hash,
                account_id=token.account_id,
                role=token.role.value,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    def get(self, token_hash: str) -> LinkToken | None:
        r = self.conn.execute(
            select(link_tokens).where(link_tokens.c.token_hash == token_hash)
        ).first()
        if r is None:
            return None
        return LinkToken(
            r.token_hash,
            r.account_id,
            Role(r.role),
            r.created_at,
            r.expires_at,
            r.used_at,
            r.used_by_user_id,
        )

    def mark_used(self, token_hash: str, user_id: int, now: datetime) -> bool:
        result = self.conn.execute(
            update(link_tokens)
            .where(
                link_tokens.c.token_hash == token_hash,
                link_tokens.c.used_at.is_(None),
            )
            .values(used_at=now, used_by_user_id=user_id)
        )
        return bool(result.rowcount == 1)


_e = envelopes.c
_ENVELOPE_BY_ID = Prepared(select(envelopes).where(_e.id == bindparam("envelope_id")))
_ENVELOPE_BY_ACCOUNT_REF = Prepared(
    select(envelopes).where(_e.account_id == bindparam("account_id"), _e.ref == bindparam("ref"))
)
_ENVELOPES_BY_REF = Prepared(select(envelopes).where(_e.ref == bindparam("ref")))
_ENVELOPES_BY_IDS = select(envelopes).where(_e.id.in_(bindparam("ids", expanding=True)))
_d, _s = documents.c, signers.c
_DOCUMENTS_OF = Prepared(
    select(_d.envelope_id, _d.name, _d.pages)
    .where(_d.envelope_id == bindparam("envelope_id"))
    .order_by(_d.position)
)
_DOCUMENTS_OF_MANY = (
    select(_d.envelope_id, _d.name, _d.pages)
    .where(_d.envelope_id.in_(bindparam("ids", expanding=True)))
    .order_by(_d.envelope_id, _d.position)
)
_SIGNERS_OF = Prepared(
    select(signers).where(_s.envelope_id == bindparam("envelope_id")).order_by(_s.position)
)
_SIGNERS_OF_MANY = (
    select(signers)
    .where(_s.envelope_id.in_(bindparam("ids", expanding=True)))
    .order_by(_s.envelope_id, _s.position)
)
_SAVE_SIGNER = PreparedWrite(
    update(signers)
    .where(_s.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), signed_at=bindparam("b_signed_at")),
    ("b_id", "b_status", "b_signed_at"),
)
_FIELDS = (
    "title",
    "description",
    "status",
    "icp",
    "ordered",
    "quoted_credits",
    "created_by",
    "expires_at",
    "sealed_at",
    "tags",
    "search_text",
    "updated_at",
)
_BUMP = PreparedWrite(
    update(envelopes)
    .where(_e.id == bindparam("b_id"), _e.version == bindparam("b_version"))
    .values(version=bindparam("b_new_version"), **{f: bindparam(f"b_{f}") for f in _FIELDS}),
    ("b_id", "b_version", "b_new_version", *(f"b_{f}" for f in _FIELDS)),
)
# One statement per shape of EnvelopeQuery (which filters are present); values are bound.
_QueryShape = tuple[tuple[EnvelopeStatus, ...], bool, bool, bool, bool]
_IDS_BY_SHAPE: dict[tuple[_QueryShape, bool], Any] = {}
_COUNT_BY_SHAPE: dict[_QueryShape, Any] = {}
_COUNT_BY_STATUS = {
    by_creator: Prepared(
        select(_e.status, func.count().label("n"))
        .where(
            _e.account_id == bindparam("account_id"),
            *([_e.created_by == bindparam("created_by")] if by_creator else []),
        )
        .group_by(_e.status)
    )
    for by_creator in (False, True)
}


def status_filter(statuses: Sequence[EnvelopeStatus]) -> ColumnElement[bool]:
    """`status IN (...)` with the values written into the statement: a literal IN list would
    be re-rendered on every execution (an "expanding" parameter); SQLite plans an OR of
    equalities on one column as IN."""
    return or_(*(_e.status == literal(s.value) for s in statuses))


def _shape(q: EnvelopeQuery, term: str) -> _QueryShape:
    return (
        tuple(q.statuses),
        q.created_by is not None,
        q.expires_after is not None,
        q.expires_before is not None,
        bool(term),
    )


def _bound_filters(shape: _QueryShape) -> list[ColumnElement[bool]]:
    statuses, by_creator, after, before, searching = shape
    conds: list[ColumnElement[bool]] = [_e.account_id == bindparam("account_id")]
    if by_creator:
        conds.append(_e.created_by == bindparam("created_by"))
    if statuses:
        conds.append(status_filter(statuses))
    if after:
        conds.append(_e.expires_at > bindparam("after"))
    if before:
        conds.append(_e.expires_at <= bindparam("before"))
    if searching:
        conds.append(_e.search_text.like(bindparam("pattern"), escape="\\"))
    return conds


def _query_params(q: EnvelopeQuery, term: str) -> dict[str, Any]:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {
        "account_id": q.account_id,
        "created_by": q.created_by,
        "after": q.expires_after,
        "before": q.expires_before,
        "pattern": f"%{escaped}%",
        "limit": q.limit,
        "offset": q.offset,
    }


class SqlEnvelopeRepository(_Repo):
    def add(self, envelope: Envelope, now: datetime) -> Envelope:
        envelope.id = self.conn.execute(
            insert(envelopes)
            .values(
                account_id=envelope.account_id,
                ref=envelope.ref,
                created_at=now,
                **self._fields(envelope, now),
            )
            .returning(envelopes.c.id)
        ).scalar_one()
        envelope.version = 0
        self._write_documents(envelope)
        self._write_signers(envelope, existing=())
        return envelope

    def get(self, envelope_id: int) -> Envelope | None:
        found = self._load(_ENVELOPE_BY_ID.all(self.conn, {"envelope_id": envelope_id}))
        return found[0] if found else None

    def get_by_ref(self, account_id: int, ref: str) -> Envelope | None:
        found = self._load(
            _ENVELOPE_BY_ACCOUNT_REF.all(self.conn, {"account_id": account_id, "ref": ref})
        )
        return found[0] if found else None

    def find_by_ref(self, ref: str) -> list[Envelope]:
        return self._load(_ENVELOPES_BY_REF.all(self.conn, {"ref": ref}))

    def save(self, envelope: Envelope, now: datetime) -> None:
        self._bump(envelope, now)
        if envelope.signers:
            _SAVE_SIGNER.executemany(
                self.conn,
                [
                    {"b_id": s.id, "b_status": s.status.value, "b_signed_at": s.signed_at}
                    for s in envelope.signers
                ],
            )

    def replace(self, envelope: Envelope, now: datetime) -> None:
        self._bump(envelope, now)
        assert envelope.id is not None
        self.conn.execute(delete(documents).where(documents.c.envelope_id == envelope.id))
        self._write_documents(envelope)
        existing = (
            self.conn.execute(select(signers.c.id).where(signers.c.envelope_id == envelope.id))
            .scalars()
            .all()
        )
        self._write_signers(envelope, existing)

    def query(self, q: EnvelopeQuery) -> list[Envelope]:
        term = fold(q.search.strip())
        key = (_shape(q, term), q.order_by_deadline)
        stmt = _IDS_BY_SHAPE.get(key)
        if stmt is None:
            order: list[Any] = (
                [_e.expires_at.asc().nulls_last(), _e.id.asc()]
                if q.order_by_deadline
                else [_e.id.desc()]
            )
            stmt = _IDS_BY_SHAPE[key] = (
                select(_e.id)
                .where(*_bound_filters(key[0]))
                .order_by(*order)
                .limit(bindparam("limit"))
                .offset(bindparam("offset"))
            )
        ids = self.conn.execute(stmt, _query_params(q, term)).scalars().all()
        if not ids:
            return []
        rows = self.conn.execute(_ENVELOPES_BY_IDS, {"ids": list(ids)}).all()
        by_id = {e.id: e for e in self._load(rows)}
        return [by_id[i] for i in ids]

    def count(self, q: EnvelopeQuery) -> int:
        term = fold(q.search.strip())
        shape = _shape(q, term)
        stmt = _COUNT_BY_SHAPE.get(shape)
        if stmt is None:
            stmt = _COUNT_BY_SHAPE[shape] = (
                select(func.count()).select_from(envelopes).where(*_bound_filters(shape))
            )
        return int(self.conn.execute(stmt, _query_params(q, term)).scalar_one())

    def count_by_status(self, account_id: int, created_by: int | None) -> dict[str, int]:
        rows = _COUNT_BY_STATUS[created_by is not None].all(
            self.conn, {"account_id": account_id, "created_by": created_by}
        )
        return {status: int(n) for status, n in rows}

    # -- internals ---------------------------------------------------------------------------
    @staticmethod
    def _fields(e: Envelope, now: datetime) -> dict[str, Any]:
        search = " ".join([e.title, e.ref, *(s.name for s in e.signers)])
        return {
            "title": e.title,
            "description": e.description,
            "status": e.status.value,
            "icp": e.icp,
            "ordered": e.ordered,
            "quoted_credits": e.quoted_credits,
            "created_by": e.created_by,
            "expires_at": e.expires_at,
            "sealed_at": e.sealed_at,
            "tags": json.dumps(e.tags, ensure_ascii=False),
            "search_text": fold(search),
            "updated_at": now,
        }

    def _bump(self, e: Envelope, now: datetime) -> None:
        values = {f"b_{name}": value for name, value in self._fields(e, now).items()}
        result = _BUMP.execute(
            self.conn,
            {"b_id": e.id, "b_version": e.version, "b_new_version": e.version + 1, **values},
        )
        if result.rowcount != 1:
            raise Conflict("the envelope changed meanwhile", what="envelope", id=e.id)
        e.version += 1

    def _write_documents(self, e: Envelope) -> None:
        if e.documents:
            self.conn.execute(
                insert(documents),
                [
                    {"envelope_id": e.id, "position": i, "name": d.name, "pages": d.pages}
                    for i, d in enumerate(e.documents)
                ],
            )

    def _write_signers(self, e: Envelope, existing: Sequence[int]) -> None:
        keep = {s.id for s in e.signers if s.id is not None}
        gone = [i for i in existing if i not in keep]
        if gone:
            self.conn.execute(delete(signers).where(signers.c.id.in_(gone)))
        for i, s in enumerate(e.signers):
            values = {
                "envelope_id": e.id,
                "position": i,
                "name": s.name,
                "email": s.email,
                "phone": s.phone,
                "queue_order": s.order,
                "status": s.status.value,
                "signed_at": s.signed_at,
            }
            if s.id is None:
                s.id = self.conn.execute(
                    insert(signers).values(**values).returning(signers.c.id)
                ).scalar_one()
            else:
                self.conn.execute(update(signers).where(signers.c.id == s.id).values(**values))

    def _load(self, rows: Sequence[Any]) -> list[Envelope]:
        """The envelopes of these rows, with their documents and signers."""
        if not rows:
            return []
        # One envelope (every tap of the bot) takes the prepared `=` statements, not IN lists.
        if len(rows) == 1:
            one = {"envelope_id": rows[0].id}
            documents_of: Any = _DOCUMENTS_OF.all(self.conn, one)
            signers_of: Any = _SIGNERS_OF.all(self.conn, one)
        else:
            many = {"ids": [r.id for r in rows]}
            documents_of = self.conn.execute(_DOCUMENTS_OF_MANY, many)
            signers_of = self.conn.execute(_SIGNERS_OF_MANY, many)
        docs: dict[int, list[Document]] = defaultdict(list)
        sigs: dict[int, list[Signer]] = defaultdict(list)
        for d in documents_of:
            docs[d.envelope_id].append(Document(d.name, d.pages))
        for s in signers_of:
            sigs[s.envelope_id].append(signer_from_row(s))
        return [envelope_from_row(r, docs[r.id], sigs[r.id]) for r in rows]


def signer_from_row(s: Row[Any]) -> Signer:
    return Signer(
        s.name, s.email, s.phone, s.queue_order, SignerStatus(s.status), s.signed_at, s.id
    )


def envelope_from_row(r: Row[Any], docs: list[Document], sigs: list[Signer]) -> Envelope:
    return Envelope(
        account_id=r.account_id,
        ref=r.ref,
        title=r.title,
        expires_at=r.expires_at,
        description=r.description,
        icp=r.icp,
        ordered=r.ordered,
        quoted_credits=r.quoted_credits,
        status=EnvelopeStatus(r.status),
        created_by=r.created_by,
        documents=docs,
        signers=sigs,
        tags=json.loads(r.tags),
        sealed_at=r.sealed_at,
        id=r.id,
        version=r.version,
    )


_POOL_COLUMN = {Pool.CREDITS: "credits", Pool.NOTIFICATION: "notification_credits"}


def _balance_updates(conditional: bool) -> dict[Pool, PreparedWrite]:
    """Per pool: `pool = pool - :amount WHERE id = :account [AND pool >= :amount]`."""
    account, amount = bindparam("account", type_=Integer), bindparam("amount", type_=Integer)
    built: dict[Pool, PreparedWrite] = {}
    for pool, name in _POOL_COLUMN.items():
        column = accounts.c[name]
        where = [accounts.c.id == account, *([column >= amount] if conditional else [])]
        built[pool] = PreparedWrite(
            update(accounts).where(*where).values({column: column - amount}), ("account", "amount")
        )
    return built


_DEBIT = _balance_updates(conditional=True)
_CREDIT = _balance_updates(conditional=False)  # executed with a negated amount
_ENTRY_BY_KEY = Prepared(select(ledger).where(ledger.c.idempotency_key == bindparam("key")))
_BALANCES = Prepared(
    select(accounts.c.credits, accounts.c.notification_credits).where(
        accounts.c.id == bindparam("account_id")
    )
)
_HISTORY = (
    select(ledger)
    .where(ledger.c.account_id == bindparam("account_id"))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_ENTRY_COUNT = (
    select(func.count()).select_from(ledger).where(ledger.c.account_id == bindparam("account_id"))
)


class SqlLedgerRepository(_Repo):
    def append(self, entry: EntryDraft, now: datetime) -> bool:
        result = insert_ignoring_duplicates(
            self.conn,
            ledger,
            {
                "account_id": entry.account_id,
                "pool": entry.pool.value,
                "amount": entry.amount,
                "reason": entry.reason.value,
                "idempotency_key": entry.idempotency_key,
                "envelope_id": entry.envelope_id,
                "notification_id": entry.notification_id,
                "actor_user_id": entry.actor_user_id,
                "note": entry.note[:500],
                "created_at": now,
            },
            "idempotency_key",
        )
        return result.fetchone() is not None

    def debit(self, account_id: int, pool: Pool, amount: int) -> bool:
        result = _DEBIT[pool].execute(self.conn, {"account": account_id, "amount": amount})
        return bool(result.rowcount == 1)

    def credit(self, account_id: int, pool: Pool, amount: int) -> None:
        _CREDIT[pool].execute(self.conn, {"account": account_id, "amount": -amount})

    def by_key(self, idempotency_key: str) -> LedgerEntry | None:
        row = _ENTRY_BY_KEY.first(self.conn, {"key": idempotency_key})
        return _entry(row) if row else None

    def balances(self, account_id: int) -> Balances:
        row = _BALANCES.first(self.conn, {"account_id": account_id})
        if row is None:
            raise LookupError(f"account {account_id} not found")
        return Balances(row.credits, row.notification_credits)

    def history(self, account_id: int, limit: int, offset: int) -> list[LedgerEntry]:
        rows = self.conn.execute(
            _HISTORY, {"account_id": account_id, "limit": limit, "offset": offset}
        )
        return [_entry(r) for r in rows]

    def count(self, account_id: int) -> int:
        return int(self.conn.execute(_ENTRY_COUNT, {"account_id": account_id}).scalar_one())


def _entry(r: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        r.id,
        r.account_id,
        Pool(r.pool),
        r.amount,
        Reason(r.reason),
        r.idempotency_key,
        r.envelope_id,
        r.notification_id,
        r.actor_user_id,
        r.note,
        r.created_at,
    )


def _predecessors(new: DeliveryStatus) -> list[str]:
    return [s.value for s in DeliveryStatus if may_move(s, new)]


_n = notifications.c
_NOTIFICATION_BY_ID = select(notifications).where(_n.id == bindparam("notification_id"))
_NOTIFICATION_BY_KEY = Prepared(select(notifications).where(_n.idempotency_key == bindparam("key")))
_LAST_REQUESTED = Prepared(
    select(func.max(_n.created_at).label("last")).where(
        _n.signer_id == bindparam("signer_id"), _n.channel == bindparam("channel")
    )
)
_PAID_SINCE = Prepared(
    select(func.count().label("n"))
    .select_from(notifications)
    .where(
        _n.account_id == bindparam("account_id"), _n.created_at >= bindparam("since"), _n.cost > 0
    )
)
_FOR_ENVELOPE = (
    select(notifications).where(_n.envelope_id == bindparam("envelope_id")).order_by(_n.id)
)


class SqlNotificationRepository(_Repo):
    def add(self, draft: NotificationDraft, now: datetime) -> Notification | None:
        result = insert_ignoring_duplicates(
            self.conn,
            notifications,
            {
                "account_id": draft.account_id,
                "envelope_id": draft.envelope_id,
                "signer_id": draft.signer_id,
                "channel": draft.channel.value,
                "kind": draft.kind.value,
                "destination": draft.destination,
                "cost": draft.cost,
                "segments": draft.segments,
                "body": draft.body,
                "status": DeliveryStatus.QUEUED.value,
                "idempotency_key": draft.idempotency_key,
                "requested_by": draft.requested_by,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
            "idempotency_key",
        )
        inserted = result.fetchone()
        if inserted is None:
            return None
        new_id = inserted[0]
        # The row as just written (what `get` would read back, one query less per send).
        at = now.astimezone(UTC)
        d = draft
        return Notification(
            new_id,
            d.account_id,
            d.envelope_id,
            d.signer_id,
            d.channel,
            d.kind,
            d.destination,
            d.cost,
            d.segments,
            d.body,
            DeliveryStatus.QUEUED,
            d.idempotency_key,
            d.requested_by,
            None,
            None,
            0,
            at,
            at,
            at,
            None,
        )

    def get(self, notification_id: int) -> Notification | None:
        row = self.conn.execute(_NOTIFICATION_BY_ID, {"notification_id": notification_id}).first()
        return notification_from_row(row) if row else None

    def by_key(self, idempotency_key: str) -> Notification | None:
        row = _NOTIFICATION_BY_KEY.first(self.conn, {"key": idempotency_key})
        return notification_from_row(row) if row else None

    def last_requested_at(self, signer_id: int, channel: Channel) -> datetime | None:
        row = _LAST_REQUESTED.first(self.conn, {"signer_id": signer_id, "channel": channel.value})
        value = None if row is None else row.last
        return value if value is None else _aware(value)

    def paid_since(self, account_id: int, since: datetime) -> int:
        row = _PAID_SINCE.first(self.conn, {"account_id": account_id, "since": since})
        return int(row.n) if row is not None else 0

    def set_status(
        self,
        notification_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        error_code: str | None = None,
        provider_id: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if error_code is not None:
            values["error_code"] = error_code[:40]
        if provider_id is not None:
            values["provider_id"] = provider_id
        result = self.conn.execute(
            update(notifications)
            .where(
                notifications.c.id == notification_id,
                notifications.c.status.in_(_predecessors(status)),
            )
            .values(**values)
        )
        return bool(result.rowcount == 1)

    def for_envelope(self, envelope_id: int) -> list[Notification]:
        rows = self.conn.execute(_FOR_ENVELOPE, {"envelope_id": envelope_id})
        return [notification_from_row(r) for r in rows]


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back a naive (UTC) value or a string.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def notification_from_row(r: Row[Any]) -> Notification:
    return Notification(
        r.id,
        r.account_id,
        r.envelope_id,
        r.signer_id,
        Channel(r.channel),
        Kind(r.kind),
        r.destination,
        r.cost,
        r.segments,
        r.body,
        DeliveryStatus(r.status),
        r.idempotency_key,
        r.requested_by,
        r.provider_id,
        r.error_code,
        r.attempts,
        r.created_at,
        r.updated_at,
        r.next_attempt_at,
        r.lease_until,
    )
