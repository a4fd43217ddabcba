"""The envelope aggregate: documents, signers, signing order and the status machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.errors import InvalidState, NotFound


class EnvelopeStatus(StrEnum):
    RASCUNHO = "rascunho"
    PENDENTE = "pendente"
    BLOQUEADO = "bloqueado"
    CONCLUIDO = "concluido"
    CANCELADO = "cancelado"
    EXCLUIDO = "excluido"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({EnvelopeStatus.CONCLUIDO, EnvelopeStatus.CANCELADO, EnvelopeStatus.EXCLUIDO})

# The platform's UI words, accents included, map onto the enum values.
STATUS_ALIASES: dict[str, EnvelopeStatus] = {
    **{s.value: s for s in EnvelopeStatus},
    "concluído": EnvelopeStatus.CONCLUIDO,
    "excluído": EnvelopeStatus.EXCLUIDO,
}


class SignerStatus(StrEnum):
    PENDENTE = "pendente"
    ASSINADO = "assinado"


@dataclass(frozen=True)
class Document:
    name: str
    pages: int


@dataclass
class Signer:
    name: str
    email: str
    phone: str | None  # E.164, e.g. +5511987654321
    order: int = 0
    status: SignerStatus = SignerStatus.PENDENTE
    signed_at: datetime | None = None
    id: int | None = None

    @property
    def is_pending(self) -> bool:
        return self.status is SignerStatus.PENDENTE


@dataclass
class Envelope:
    """One envelope; methods enforce DOMAIN.md's transitions and return who must be notified."""

    account_id: int
    ref: str
    title: str
    expires_at: datetime | None
    description: str = ""
    icp: bool = False
    ordered: bool = False
    quoted_credits: int | None = None
    status: EnvelopeStatus = EnvelopeStatus.RASCUNHO
    created_by: int | None = None
    documents: list[Document] = field(default_factory=list)
    signers: list[Signer] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    sealed_at: datetime | None = None
    id: int | None = None
    version: int = 0

    # -- queries ---------------------------------------------------------------------------
    def is_expired(self, now: datetime) -> bool:
        """Pending past its expiration date: nobody can sign, nothing is sent."""
        return (
            self.status is EnvelopeStatus.PENDENTE
            and self.expires_at is not None
            and self.expires_at <= now
        )

    def display_status(self, now: datetime) -> str:
        return "expirado" if self.is_expired(now) else self.status.value

    def pending_signers(self) -> list[Signer]:
        return [s for s in self.signers if s.is_pending]

    def signers_in_turn(self) -> list[Signer]:
        """Pending signers whose turn has come: all of them unless the queue is ordered."""
        pending = self.pending_signers()
        if not self.ordered or not pending:
            return pending
        lowest = min(s.order for s in pending)
        return [s for s in pending if s.order == lowest]

    def signer(self, signer_id: int) -> Signer:
        for s in self.signers:
            if s.id == signer_id:
                return s
        raise NotFound("signer not found", what="signer", id=signer_id)

    def signer_by_email(self, email: str) -> Signer:
        wanted = email.strip().lower()
        for s in self.signers:
            if s.email.lower() == wanted:
                return s
        raise NotFound("signer not found", what="signer", email=email)

    def can_notify(self, signer: Signer, now: datetime) -> bool:
        """Invariant 5: only pending signers, in turn, of pending unexpired envelopes."""
        return (
            self.status is EnvelopeStatus.PENDENTE
            and not self.is_expired(now)
            and signer.is_pending
            and signer in self.signers_in_turn()
        )

    def anyone_signed(self) -> bool:
        return any(not s.is_pending for s in self.signers)

    # -- transitions -----------------------------------------------------------------------
    def _require(self, *allowed: EnvelopeStatus, action: str) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {action} an envelope that is {self.status.value}",
                action=action,
                status=self.status.value,
            )

    def seal(self, now: datetime) -> list[Signer]:
        """rascunho -> pendente; returns the signers to send the free e-mail request to."""
        self._require(EnvelopeStatus.RASCUNHO, action="seal")
        if not self.signers:
            raise InvalidState(
                "an envelope needs at least one signer", action="seal", missing="signer"
            )
        if not self.documents:
            raise InvalidState(
                "an envelope needs at least one document", action="seal", missing="document"
            )
        if self.expires_at is not None and self.expires_at <= now:
            raise InvalidState(
                "the expiration date has passed", action="seal", missing="expires_at"
            )
        self.status = EnvelopeStatus.PENDENTE
        self.sealed_at = now
        return self.signers_in_turn()

    def _require_live(self, now: datetime, action: str) -> None:
        if self.is_expired(now):
            raise InvalidState("the envelope has expired", action=action, status="expirado")

    def block(self, now: datetime) -> None:
        self._require(EnvelopeStatus.PENDENTE, action="block")
        self._require_live(now, "block")
        if self.anyone_signed():
            raise InvalidState(
                "a signer has already signed",
                action="block",
                status=self.status.value,
                reason="signed",
            )
        self.status = EnvelopeStatus.BLOQUEADO

    def unblock(self, now: datetime) -> list[Signer]:
        """bloqueado -> pendente; every signer in turn is notified again (free e-mail)."""
        self._require(EnvelopeStatus.BLOQUEADO, action="unblock")
        self.status = EnvelopeStatus.PENDENTE
        if self.is_expired(now):
            return []
        return self.signers_in_turn()

    def cancel(self, now: datetime) -> None:
        self._require(EnvelopeStatus.PENDENTE, action="cancel")
        self.status = EnvelopeStatus.CANCELADO

    def delete_draft(self) -> None:
        self._require(EnvelopeStatus.RASCUNHO, action="delete")
        self.status = EnvelopeStatus.EXCLUIDO

    def record_signature(self, signer: Signer, now: datetime) -> list[Signer]:
        """Mark a signature; completes the envelope or returns the signers whose turn came."""
        self._require(EnvelopeStatus.PENDENTE, action="sign")
        self._require_live(now, "sign")
        if not signer.is_pending:
            raise InvalidState(
                "this signer has already signed", action="sign", status=signer.status.value
            )
        if signer not in self.signers_in_turn():
            raise InvalidState(
                "it is not this signer's turn yet", action="sign", reason="not_in_turn"
            )
        before = {id(s) for s in self.signers_in_turn()}
        signer.status = SignerStatus.ASSINADO
        signer.signed_at = now
        if not self.pending_signers():
            self.status = EnvelopeStatus.CONCLUIDO
            return []
        return [s for s in self.signers_in_turn() if id(s) not in before]
