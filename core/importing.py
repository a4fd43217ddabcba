"""The envelope import file: validated whole before anything is written."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.clock import ensure_utc
from core.envelopes import (
    STATUS_ALIASES,
    Document,
    Envelope,
    EnvelopeStatus,
    Signer,
    SignerStatus,
)
from core.errors import InvalidInput
from core.ports import PhoneBook

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Control characters other than tab and line breaks: PostgreSQL refuses NUL outright.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Every integer column is 32-bit on PostgreSQL; a bigger number must be refused, not crash.
_INT_RANGE = range(-(2**31), 2**31)
MAX_CREDITS = 1_000_000
MAX_ORDER = 1_000


def _text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text on both databases, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text"  # a lone surrogate, e.g. from "\ud800" in the JSON
    if _CONTROL.search(value):
        return "contains a control character"
    return None


# Moves an import may make to an envelope Lacre already holds (never backwards).
_FORWARD: dict[EnvelopeStatus, frozenset[EnvelopeStatus]] = {
    EnvelopeStatus.RASCUNHO: frozenset({EnvelopeStatus.PENDENTE, EnvelopeStatus.EXCLUIDO}),
    EnvelopeStatus.PENDENTE: frozenset(
        {EnvelopeStatus.BLOQUEADO, EnvelopeStatus.CANCELADO, EnvelopeStatus.CONCLUIDO}
    ),
    EnvelopeStatus.BLOQUEADO: frozenset({EnvelopeStatus.PENDENTE, EnvelopeStatus.CANCELADO}),
}


@dataclass(frozen=True)
class SignerItem:
    name: str
    email: str
    phone: str | None
    order: int
    status: SignerStatus


@dataclass(frozen=True)
class EnvelopeItem:
    ref: str
    title: str
    description: str
    status: EnvelopeStatus
    icp: bool
    ordered: bool
    expires_at: datetime | None
    credits: int | None
    documents: tuple[Document, ...]
    signers: tuple[SignerItem, ...]
    tags: tuple[str, ...]
    created_by: int | None

    def to_envelope(self, account_id: int) -> Envelope:
        return Envelope(
            account_id=account_id,
            ref=self.ref,
            title=self.title,
            description=self.description,
            expires_at=self.expires_at,
            icp=self.icp,
            ordered=self.ordered,
            quoted_credits=self.credits,
            status=self.status,
            created_by=self.created_by,
            documents=list(self.documents),
            signers=[Signer(s.name, s.email, s.phone, s.order, s.status) for s in self.signers],
            tags=list(self.tags),
        )

    def apply_to(self, env: Envelope) -> bool:
        """Update `env` in place from this item; True if anything changed."""
        if self.status is not env.status and self.status not in _FORWARD.get(env.status, ()):
            raise InvalidInput(
                f"envelope {self.ref}: status cannot go from {env.status.value} to "
                f"{self.status.value}",
                ref=self.ref,
                field="status",
            )
        before = replace(
            env,
            documents=list(env.documents),
            signers=[replace(s) for s in env.signers],
            tags=list(env.tags),
        )
        by_email = {s.email.lower(): s for s in env.signers}
        signers: list[Signer] = []
        for item in self.signers:
            old = by_email.get(item.email.lower())
            signed = item.status is SignerStatus.ASSINADO or (
                old is not None and old.status is SignerStatus.ASSINADO
            )
            signers.append(
                Signer(
                    item.name,
                    item.email,
                    item.phone,
                    item.order,
                    SignerStatus.ASSINADO if signed else SignerStatus.PENDENTE,
                    old.signed_at if old is not None else None,
                    old.id if old is not None else None,
                )
            )
        env.title, env.description, env.status = self.title, self.description, self.status
        env.icp, env.ordered, env.expires_at = self.icp, self.ordered, self.expires_at
        env.quoted_credits, env.documents = self.credits, list(self.documents)
        env.signers, env.tags = signers, list(self.tags)
        if self.created_by is not None:
            env.created_by = self.created_by
        return _snapshot(before) != _snapshot(env)


def _snapshot(env: Envelope) -> tuple[Any, ...]:
    return (
        env.title,
        env.description,
        env.status,
        env.icp,
        env.ordered,
        env.expires_at,
        env.quoted_credits,
        tuple(env.documents),
        env.created_by,
        tuple(env.tags),
        tuple((s.name, s.email, s.phone, s.order, s.status) for s in env.signers),
    )


@dataclass(frozen=True)
class ImportBatch:
    account_id: int
    envelopes: tuple[EnvelopeItem, ...]


class _Reader:
    """Typed field access that names the envelope and field in every refusal."""

    def __init__(self, data: Any, where: str, ref: str | None = None) -> None:
        if not isinstance(data, dict):
            prefix = f"envelope {ref}: " if ref else ""
            raise InvalidInput(f"{prefix}{where}: expected an object", ref=ref, field=where)
        self.data, self.where, self.ref = data, where, ref

    def fail(self, name: str, problem: str) -> InvalidInput:
        prefix = f"envelope {self.ref}: " if self.ref else ""
        return InvalidInput(
            f"{prefix}{self.where}.{name}: {problem}", ref=self.ref, field=f"{self.where}.{name}"
        )

    def get(self, name: str, kind: type, *, required: bool = True, default: Any = None) -> Any:
        if name not in self.data or self.data[name] is None:
            if required:
                raise self.fail(name, "is required")
            return default
        value = self.data[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.fail(name, f"expected {kind.__name__}, got {type(value).__name__}")
        if kind is int and value not in _INT_RANGE:
            raise self.fail(name, "is out of range")
        return value

    def text(self, name: str, *, required: bool = True, max_len: int = 500) -> str:
        value: str = self.get(name, str, required=required, default="")
        problem = _text_problem(value)
        if problem is not None:
            raise self.fail(name, problem)
        value = value.strip()
        if required and not value:
            raise self.fail(name, "must not be empty")
        if len(value) > max_len:
            raise self.fail(name, f"longer than {max_len} characters")
        return value


def parse_import(raw: str | bytes | Any, phones: PhoneBook) -> ImportBatch:
    """Validate a whole import file (JSON text or already-decoded data) or refuse it."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the file is not valid JSON: {exc}", field="file") from exc
    top = _Reader(raw, "file")
    account = top.data.get("account_id")
    if isinstance(account, str) and account.strip().isdigit():
        account = int(account)
    if not isinstance(account, int) or isinstance(account, bool) or not 0 < account < 2**31:
        raise top.fail("account_id", "expected an account id")
    items = top.get("envelopes", list)
    seen: set[str] = set()
    parsed: list[EnvelopeItem] = []
    for index, data in enumerate(items):
        item = _parse_envelope(data, index, phones)
        if item.ref in seen:
            raise InvalidInput(
                f"envelope {item.ref}: ref appears twice in the file", ref=item.ref, field="ref"
            )
        seen.add(item.ref)
        parsed.append(item)
    return ImportBatch(account, tuple(parsed))


def _parse_envelope(data: Any, index: int, phones: PhoneBook) -> EnvelopeItem:
    pre = _Reader(data, f"envelopes[{index}]")
    ref = pre.text("ref", max_len=64)
    r = _Reader(data, "envelope", ref)
    status_raw = r.text("status", required=False) or "rascunho"
    status = STATUS_ALIASES.get(status_raw.lower())
    if status is None:
        raise r.fail("status", f"unknown status {status_raw!r}")
    expires_at = None
    if r.get("expires_at", str, required=False) is not None:
        try:
            expires_at = ensure_utc(datetime.fromisoformat(r.data["expires_at"]))
        except ValueError as exc:
            raise r.fail(
                "expires_at",
                "expected an ISO 8601 date with its UTC offset, e.g. 2026-12-01T18:00:00-03:00",
            ) from exc
    credits = r.get("credits", int, required=False)
    if credits is not None and credits < 0:
        raise r.fail("credits", "must not be negative")
    if credits is not None and credits > MAX_CREDITS:
        raise r.fail("credits", f"must be at most {MAX_CREDITS}")
    ordered = r.get("ordered", bool, required=False, default=False)
    documents = []
    for i, doc in enumerate(r.get("documents", list, required=False, default=[])):
        d = _Reader(doc, f"documents[{i}]", ref)
        pages = d.get("pages", int, required=False, default=1)
        if pages < 1:
            raise d.fail("pages", "must be at least 1")
        documents.append(Document(d.text("name", max_len=255), pages))
    signers: list[SignerItem] = []
    emails: set[str] = set()
    for i, sig in enumerate(r.get("signers", list, required=False, default=[])):
        s = _Reader(sig, f"signers[{i}]", ref)
        email = s.text("email", max_len=254)
        if not _EMAIL.match(email):
            raise s.fail("email", f"{email!r} is not an e-mail address")
        if email.lower() in emails:
            raise s.fail("email", "appears twice in this envelope")
        emails.add(email.lower())
        phone = None
        raw_phone = s.text("phone", required=False, max_len=40)
        if raw_phone:
            try:
                phone = phones.normalize(raw_phone)
            except InvalidInput as exc:
                raise s.fail("phone", str(exc)) from exc
        order = s.get("order", int, required=False, default=0)
        if order < 0:
            raise s.fail("order", "must be 0 or more")
        if order > MAX_ORDER:
            raise s.fail("order", f"must be at most {MAX_ORDER}")
        if not ordered and order != 0:
            raise s.fail("order", "must be 0 when the envelope is not ordered")
        sstatus_raw = s.text("status", required=False) or "pendente"
        try:
            sstatus = SignerStatus(sstatus_raw.lower())
        except ValueError as exc:
            raise s.fail("status", f"unknown signer status {sstatus_raw!r}") from exc
        signers.append(SignerItem(s.text("name", max_len=200), email, phone, order, sstatus))
    everyone_signed = bool(signers) and all(x.status is SignerStatus.ASSINADO for x in signers)
    if status is EnvelopeStatus.CONCLUIDO and not everyone_signed:
        raise r.fail("status", "concluído needs every signer to have signed")
    if status is EnvelopeStatus.RASCUNHO and any(
        x.status is SignerStatus.ASSINADO for x in signers
    ):
        raise r.fail("signers", "a draft cannot have signatures")
    tags = r.get("tags", list, required=False, default=[])
    if not all(isinstance(t, str) for t in tags):
        raise r.fail("tags", "expected a list of strings")
    for tag in tags:
        if (problem := _text_problem(tag)) is not None:
            raise r.fail("tags", problem)
    created_by = r.get("created_by", int, required=False)
    return EnvelopeItem(
        ref,
        r.text("title", max_len=300),
        r.text("description", required=False, max_len=5000),
        status,
        r.get("icp", bool, required=False, default=False),
        ordered,
        expires_at,
        credits,
        tuple(documents),
        tuple(signers),
        tuple(tags),
        created_by,
    )
