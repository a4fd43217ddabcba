"""The envelope aggregate: every transition of DOMAIN.md's table and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from core.envelopes import Document, Envelope, EnvelopeStatus, Signer, SignerStatus
from core.errors import InvalidState, NotFound

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(days=7)


def signer(name: str, order: int = 0, *, signed: bool = False, sid: int | None = None) -> Signer:
    return Signer(
        name,
        f"{name.lower()}@example.com",
        None,
        order,
        SignerStatus.ASSINADO if signed else SignerStatus.PENDENTE,
        NOW if signed else None,
        sid,
    )


def envelope(
    status: EnvelopeStatus = EnvelopeStatus.RASCUNHO,
    *,
    signers: list[Signer] | None = None,
    documents: list[Document] | None = None,
    ordered: bool = False,
    expires_at: datetime | None = DEADLINE,
) -> Envelope:
    return Envelope(
        account_id=1,
        ref="ENV-1",
        title="Contrato",
        expires_at=expires_at,
        status=status,
        ordered=ordered,
        documents=[Document("contrato.pdf", 3)] if documents is None else documents,
        signers=[signer("Maria", sid=1), signer("Joao", sid=2)] if signers is None else signers,
    )


def names(signers: list[Signer]) -> list[str]:
    return [s.name for s in signers]


# -- the table, as a whole --------------------------------------------------------------------

ACTIONS: dict[str, Callable[[Envelope], object]] = {
    "seal": lambda e: e.seal(NOW),
    "block": lambda e: e.block(NOW),
    "unblock": lambda e: e.unblock(NOW),
    "cancel": lambda e: e.cancel(NOW),
    "delete": lambda e: e.delete_draft(),
    "sign": lambda e: e.record_signature(e.signers[0], NOW),
}

ALLOWED: dict[tuple[EnvelopeStatus, str], EnvelopeStatus] = {
    (EnvelopeStatus.RASCUNHO, "seal"): EnvelopeStatus.PENDENTE,
    (EnvelopeStatus.RASCUNHO, "delete"): EnvelopeStatus.EXCLUIDO,
    (EnvelopeStatus.PENDENTE, "block"): EnvelopeStatus.BLOQUEADO,
    (EnvelopeStatus.PENDENTE, "cancel"): EnvelopeStatus.CANCELADO,
    (EnvelopeStatus.PENDENTE, "sign"): EnvelopeStatus.PENDENTE,  # one of two signed
    (EnvelopeStatus.BLOQUEADO, "unblock"): EnvelopeStatus.PENDENTE,
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("status", list(EnvelopeStatus))
def test_every_status_and_action_either_moves_as_the_table_says_or_is_refused_unchanged(
    status: EnvelopeStatus, action: str
) -> None:
    env = envelope(status)
    expected = ALLOWED.get((status, action))
    if expected is None:
        with pytest.raises(InvalidState) as refused:
            ACTIONS[action](env)
        assert refused.value.code == "invalid_state"
        assert refused.value.data["status"] == status.value
        assert env.status is status
        assert all(s.is_pending for s in env.signers)
    else:
        ACTIONS[action](env)
        assert env.status is expected


def test_final_statuses_are_exactly_concluido_cancelado_and_excluido() -> None:
    assert {s for s in EnvelopeStatus if s.is_final} == {
        EnvelopeStatus.CONCLUIDO,
        EnvelopeStatus.CANCELADO,
        EnvelopeStatus.EXCLUIDO,
    }


# -- seal ---------------------------------------------------------------------------------------


def test_sealing_a_draft_makes_it_pending_and_names_every_signer_for_the_free_email() -> None:
    env = envelope()
    to_notify = env.seal(NOW)
    assert env.status is EnvelopeStatus.PENDENTE
    assert env.sealed_at == NOW
    assert names(to_notify) == ["Maria", "Joao"]


def test_sealing_needs_at_least_one_signer() -> None:
    env = envelope(signers=[])
    with pytest.raises(InvalidState) as refused:
        env.seal(NOW)
    assert refused.value.data["missing"] == "signer"
    assert env.status is EnvelopeStatus.RASCUNHO and env.sealed_at is None


def test_sealing_needs_at_least_one_document() -> None:
    env = envelope(documents=[])
    with pytest.raises(InvalidState) as refused:
        env.seal(NOW)
    assert refused.value.data["missing"] == "document"
    assert env.status is EnvelopeStatus.RASCUNHO


def test_sealing_is_refused_once_the_expiration_date_has_passed() -> None:
    env = envelope(expires_at=NOW)
    with pytest.raises(InvalidState) as refused:
        env.seal(NOW)
    assert refused.value.data["missing"] == "expires_at"
    assert env.status is EnvelopeStatus.RASCUNHO


def test_an_envelope_without_a_deadline_seals_and_never_expires() -> None:
    env = envelope(expires_at=None)
    env.seal(NOW)
    assert not env.is_expired(NOW + timedelta(days=3650))


def test_sealing_an_ordered_envelope_names_only_the_first_position() -> None:
    env = envelope(
        ordered=True,
        signers=[signer("Ana", 1, sid=1), signer("Bia", 0, sid=2), signer("Caio", 2, sid=3)],
    )
    assert names(env.seal(NOW)) == ["Bia"]


# -- block and unblock --------------------------------------------------------------------------


def test_blocking_is_allowed_while_nobody_has_signed() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    env.block(NOW)
    assert env.status is EnvelopeStatus.BLOQUEADO


def test_blocking_is_refused_once_a_signer_has_signed() -> None:
    env = envelope(EnvelopeStatus.PENDENTE, signers=[signer("Maria", signed=True), signer("Joao")])
    with pytest.raises(InvalidState) as refused:
        env.block(NOW)
    assert refused.value.data["reason"] == "signed"
    assert env.status is EnvelopeStatus.PENDENTE


def test_blocking_an_expired_envelope_is_refused() -> None:
    env = envelope(EnvelopeStatus.PENDENTE, expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(InvalidState) as refused:
        env.block(NOW)
    assert refused.value.data["status"] == "expirado"
    assert env.status is EnvelopeStatus.PENDENTE


def test_unblocking_makes_it_pending_again_and_names_the_signers_in_turn() -> None:
    env = envelope(EnvelopeStatus.BLOQUEADO)
    assert names(env.unblock(NOW)) == ["Maria", "Joao"]
    assert env.status is EnvelopeStatus.PENDENTE


def test_unblocking_after_the_deadline_notifies_nobody() -> None:
    env = envelope(EnvelopeStatus.BLOQUEADO, expires_at=NOW - timedelta(hours=1))
    assert env.unblock(NOW) == []
    assert env.display_status(NOW) == "expirado"


def test_a_blocked_envelope_cannot_be_signed() -> None:
    env = envelope(EnvelopeStatus.BLOQUEADO)
    with pytest.raises(InvalidState):
        env.record_signature(env.signers[0], NOW)
    assert env.signers[0].is_pending
    assert not env.can_notify(env.signers[0], NOW)


# -- cancel and delete --------------------------------------------------------------------------


def test_cancelling_is_allowed_even_when_some_signed() -> None:
    env = envelope(EnvelopeStatus.PENDENTE, signers=[signer("Maria", signed=True), signer("Joao")])
    env.cancel(NOW)
    assert env.status is EnvelopeStatus.CANCELADO


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_cancelled_envelope_accepts_no_action_at_all(action: str) -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    env.cancel(NOW)
    with pytest.raises(InvalidState):
        ACTIONS[action](env)
    assert env.status is EnvelopeStatus.CANCELADO
    assert not any(env.can_notify(s, NOW) for s in env.signers)


def test_deleting_a_draft_makes_it_excluido_for_good() -> None:
    env = envelope()
    env.delete_draft()
    assert env.status is EnvelopeStatus.EXCLUIDO
    with pytest.raises(InvalidState):
        env.seal(NOW)


# -- signatures, completion and the queue -------------------------------------------------------


def test_the_last_signature_completes_the_envelope() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    assert env.record_signature(env.signers[0], NOW) == []
    assert env.status is EnvelopeStatus.PENDENTE
    assert env.record_signature(env.signers[1], NOW) == []
    assert env.status is EnvelopeStatus.CONCLUIDO
    assert all(s.status is SignerStatus.ASSINADO and s.signed_at == NOW for s in env.signers)


def test_a_completed_envelope_is_immutable() -> None:
    env = envelope(EnvelopeStatus.PENDENTE, signers=[signer("Maria", sid=1)])
    env.record_signature(env.signers[0], NOW)
    for action in ACTIONS.values():
        with pytest.raises(InvalidState):
            action(env)
    assert env.status is EnvelopeStatus.CONCLUIDO


def test_a_signer_cannot_sign_twice() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    env.record_signature(env.signers[0], NOW)
    with pytest.raises(InvalidState) as refused:
        env.record_signature(env.signers[0], NOW + timedelta(minutes=1))
    assert refused.value.data["status"] == "assinado"
    assert env.signers[0].signed_at == NOW


def test_signers_sharing_a_position_are_in_turn_together_and_the_next_comes_after_both() -> None:
    env = envelope(
        EnvelopeStatus.PENDENTE,
        ordered=True,
        signers=[
            signer("Ana", 0, sid=1),
            signer("Bia", 0, sid=2),
            signer("Caio", 1, sid=3),
            signer("Duda", 5, sid=4),
        ],
    )
    ana, bia, caio, duda = env.signers
    assert names(env.signers_in_turn()) == ["Ana", "Bia"]
    assert env.record_signature(bia, NOW) == []  # Ana still holds position 0
    assert names(env.signers_in_turn()) == ["Ana"]
    assert names(env.record_signature(ana, NOW)) == ["Caio"]
    assert names(env.record_signature(caio, NOW)) == ["Duda"]  # gaps in positions are fine
    assert env.record_signature(duda, NOW) == []
    assert env.status is EnvelopeStatus.CONCLUIDO


def test_a_signer_whose_turn_has_not_come_cannot_sign() -> None:
    env = envelope(
        EnvelopeStatus.PENDENTE,
        ordered=True,
        signers=[signer("Ana", 0, sid=1), signer("Bia", 1, sid=2)],
    )
    with pytest.raises(InvalidState) as refused:
        env.record_signature(env.signers[1], NOW)
    assert refused.value.data["reason"] == "not_in_turn"
    assert env.signers[1].is_pending


def test_without_ordering_everyone_is_in_turn_whatever_their_position() -> None:
    env = envelope(
        EnvelopeStatus.PENDENTE, signers=[signer("Ana", 0, sid=1), signer("Bia", 3, sid=2)]
    )
    assert names(env.signers_in_turn()) == ["Ana", "Bia"]


def test_only_pending_signers_in_turn_of_a_pending_envelope_can_be_notified() -> None:
    env = envelope(
        EnvelopeStatus.PENDENTE,
        ordered=True,
        signers=[
            signer("Ana", 0, signed=True, sid=1),
            signer("Bia", 1, sid=2),
            signer("Caio", 2, sid=3),
        ],
    )
    ana, bia, caio = env.signers
    assert [env.can_notify(s, NOW) for s in (ana, bia, caio)] == [False, True, False]


# -- expiry -------------------------------------------------------------------------------------


def test_a_pending_envelope_past_its_date_is_expired_shown_as_expirado() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    assert not env.is_expired(DEADLINE - timedelta(seconds=1))
    assert env.display_status(DEADLINE - timedelta(seconds=1)) == "pendente"
    assert env.is_expired(DEADLINE)
    assert env.display_status(DEADLINE) == "expirado"


@pytest.mark.parametrize(
    "status",
    [s for s in EnvelopeStatus if s is not EnvelopeStatus.PENDENTE],
)
def test_only_pending_envelopes_expire(status: EnvelopeStatus) -> None:
    env = envelope(status)
    assert not env.is_expired(DEADLINE + timedelta(days=1))
    assert env.display_status(DEADLINE + timedelta(days=1)) == status.value


def test_nobody_can_sign_an_expired_envelope() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    with pytest.raises(InvalidState) as refused:
        env.record_signature(env.signers[0], DEADLINE)
    assert refused.value.data["status"] == "expirado"
    assert env.signers[0].is_pending and env.status is EnvelopeStatus.PENDENTE


def test_nothing_is_sent_for_an_expired_envelope() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    assert all(env.can_notify(s, DEADLINE - timedelta(seconds=1)) for s in env.signers)
    assert not any(env.can_notify(s, DEADLINE) for s in env.signers)


def test_an_expired_envelope_can_still_be_cancelled() -> None:
    env = envelope(EnvelopeStatus.PENDENTE)
    env.cancel(DEADLINE + timedelta(days=1))
    assert env.status is EnvelopeStatus.CANCELADO


# -- lookups ------------------------------------------------------------------------------------


def test_signers_are_found_by_id_and_by_email_whatever_its_case() -> None:
    env = envelope()
    assert env.signer(2).name == "Joao"
    assert env.signer_by_email("  MARIA@Example.com ").name == "Maria"
    with pytest.raises(NotFound, match="signer not found"):
        env.signer(99)
    with pytest.raises(NotFound, match="signer not found"):
        env.signer_by_email("nobody@example.com")
