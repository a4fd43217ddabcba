"""Pending confirmations: a quoted action waits in the database for one tap of its nonce."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from core.clock import Clock
from core.envelopes import Envelope
from core.errors import DomainError, InsufficientCredits, InvalidState, NotFound
from core.ledger import Pool
from core.notifications import Channel
from core.ports import UnitOfWork
from core.services import Lacre, SealQuote, SealResult, SendQuote, SendResult

CONFIRMATION_TTL = timedelta(minutes=10)
NONCE_BYTES = 16  # 128 bits; token_urlsafe gives 22 callback-data-safe characters


def _trial(env: Envelope) -> Envelope:
    """A copy for a dry run of a transition: the transitions change the envelope's own fields
    and its signers, never documents or tags in place (a deepcopy cost a fifth of a proposal)."""
    return replace(
        env,
        signers=[replace(s) for s in env.signers],
        documents=list(env.documents),
        tags=list(env.tags),
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


class Action(StrEnum):
    SEAL = "seal"
    BLOCK = "block"
    UNBLOCK = "unblock"
    CANCEL = "cancel"
    SEND = "send"


TRANSITIONS = (Action.BLOCK, Action.UNBLOCK, Action.CANCEL)


@dataclass(frozen=True)
class Confirmation:
    """An action quoted to one user, valid for ten minutes and for one tap."""

    nonce: str
    user_id: int
    account_id: int
    action: Action
    envelope_id: int
    signer_id: int | None
    channel: Channel | None
    quoted_cost: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class ConfirmationRepository(Protocol):
    def add(self, confirmation: Confirmation) -> None: ...
    def get(self, nonce: str) -> Confirmation | None: ...
    def mark_used(self, nonce: str, user_id: int, now: datetime) -> bool:
        """Conditional: True only for the one caller that found it unused and unexpired."""
        ...


class ConfirmationsUnitOfWork(UnitOfWork, Protocol):
    @property
    def confirmations(self) -> ConfirmationRepository: ...


class ConfirmationsUnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> ConfirmationsUnitOfWork: ...


@dataclass(frozen=True)
class SealProposal:
    confirmation: Confirmation
    quote: SealQuote
    envelope: Envelope


@dataclass(frozen=True)
class TransitionProposal:
    confirmation: Confirmation
    envelope: Envelope


@dataclass(frozen=True)
class SendProposal:
    confirmation: Confirmation
    quote: SendQuote
    envelope: Envelope
    signer_name: str


@dataclass(frozen=True)
class Confirmed:
    """What one confirmed tap did; exactly one of the results is set."""

    confirmation: Confirmation
    seal: SealResult | None = None
    send: SendResult | None = None
    envelope: Envelope | None = None


@dataclass
class Confirmations:
    """Propose (quote and store a nonce), then confirm once or decline."""

    uow: ConfirmationsUnitOfWorkFactory
    lacre: Lacre
    clock: Clock
    nonce: Callable[[], str] = field(default=new_nonce)
    ttl: timedelta = CONFIRMATION_TTL

    def propose_seal(self, user_id: int, envelope_id: int) -> SealProposal:
        """Quote the seal; refuse at once what the seal itself would refuse."""
        now = self.clock.now()
        with self.uow() as uow:
            _user, env = Lacre.visible_envelope(uow, user_id, envelope_id)
            _trial(env).seal(now)  # a dry run: raises the InvalidState the seal would
            quote = SealQuote(
                envelope_id, self.lacre.seal_lines(env), uow.ledger.balances(env.account_id).credits
            )
            if quote.missing:
                raise InsufficientCredits(
                    "not enough credits",
                    pool=Pool.CREDITS.value,
                    needed=quote.total,
                    balance=quote.balance_before,
                    missing=quote.missing,
                )
            confirmation = self._add(uow, user_id, env, Action.SEAL, quote.total, now)
            return SealProposal(confirmation, quote, env)

    def propose_transition(
        self, user_id: int, envelope_id: int, action: Action
    ) -> TransitionProposal:
        """Block, unblock or cancel: free, but each states its rule before the tap."""
        if action not in TRANSITIONS:
            raise ValueError(f"{action} is not a transition")
        now = self.clock.now()
        with self.uow() as uow:
            _user, env = Lacre.visible_envelope(uow, user_id, envelope_id)
            trial = _trial(env)
            if action is Action.BLOCK:
                trial.block(now)
            elif action is Action.UNBLOCK:
                trial.unblock(now)
            else:
                trial.cancel(now)
            confirmation = self._add(uow, user_id, env, action, 0, now)
            return TransitionProposal(confirmation, env)

    def propose_send(
        self, user_id: int, envelope_id: int, signer_id: int, channel: Channel
    ) -> SendProposal:
        """A paid resend: quote in notification credits, refuse now what would fail later."""
        if not channel.is_paid:
            raise ValueError("e-mail is free and needs no confirmation")
        now = self.clock.now()
        # One transaction for the quote and the stored confirmation.
        with self.uow() as uow:
            _user, env = Lacre.visible_envelope(uow, user_id, envelope_id)
            send_quote = self.lacre.send_quote_in(uow, env, signer_id, channel, now)
            priced, balance = send_quote.quote, send_quote.balance_before
            signer = env.signer(signer_id)
            if send_quote.balance_after < 0:
                raise InsufficientCredits(
                    "not enough notification credits",
                    pool=Pool.NOTIFICATION.value,
                    needed=priced.cost,
                    balance=balance,
                    missing=-send_quote.balance_after,
                )
            confirmation = self._add(
                uow, user_id, env, Action.SEND, priced.cost, now, signer_id, channel
            )
            return SendProposal(confirmation, send_quote, env, signer.name)

    def confirm(self, user_id: int, nonce: str) -> Confirmed:
        """Use the nonce once, then act with the quoted price; a changed quote charges nothing."""
        c = self._use(user_id, nonce)
        try:
            return self._act(user_id, c)
        except DomainError as exc:
            # The bot shows the refusal in place with a way back to this envelope.
            exc.data.setdefault("envelope_id", c.envelope_id)
            raise

    def _act(self, user_id: int, c: Confirmation) -> Confirmed:
        if c.action is Action.SEAL:
            seal = self.lacre.seal(user_id, c.envelope_id, expected_total=c.quoted_cost)
            return Confirmed(c, seal=seal)
        if c.action is Action.SEND:
            assert c.signer_id is not None and c.channel is not None
            send = self.lacre.request_send(
                user_id,
                c.envelope_id,
                c.signer_id,
                c.channel,
                idempotency_key=c.nonce,
                expected_cost=c.quoted_cost,
            )
            return Confirmed(c, send=send)
        if c.action is Action.BLOCK:
            return Confirmed(c, envelope=self.lacre.block(user_id, c.envelope_id))
        if c.action is Action.UNBLOCK:
            return Confirmed(c, envelope=self.lacre.unblock(user_id, c.envelope_id))
        return Confirmed(c, envelope=self.lacre.cancel(user_id, c.envelope_id))

    def decline(self, user_id: int, nonce: str) -> Confirmation:
        """ "Cancelar" on a confirmation: it can no longer be confirmed."""
        return self._use(user_id, nonce)

    # -- helpers -------------------------------------------------------------------------------
    def _add(
        self,
        uow: ConfirmationsUnitOfWork,
        user_id: int,
        env: Envelope,
        action: Action,
        cost: int,
        now: datetime,
        signer_id: int | None = None,
        channel: Channel | None = None,
    ) -> Confirmation:
        assert env.id is not None
        confirmation = Confirmation(
            self.nonce(),
            user_id,
            env.account_id,
            action,
            env.id,
            signer_id,
            channel,
            cost,
            now,
            now + self.ttl,
        )
        uow.confirmations.add(confirmation)
        uow.commit()
        return confirmation

    def _use(self, user_id: int, nonce: str) -> Confirmation:
        """Mark used with a conditional update; say why when it cannot be used."""
        now = self.clock.now()
        with self.uow() as uow:
            found = uow.confirmations.get(nonce)
            user = uow.users.get(user_id)
            # Someone else's nonce is indistinguishable from an unknown one.
            if (
                found is None
                or found.user_id != user_id
                or user is None
                or user.telegram_user_id is None
                or user.account_id != found.account_id
            ):
                raise NotFound("confirmation not found", what="confirmation")
            where = found.envelope_id
            if found.used_at is not None:
                raise InvalidState("confirmation already used", reason="used", envelope_id=where)
            if now >= found.expires_at:
                raise InvalidState("confirmation expired", reason="expired", envelope_id=where)
            if not uow.confirmations.mark_used(nonce, user_id, now):
                raise InvalidState("confirmation already used", reason="used", envelope_id=where)
            uow.commit()
            return found
