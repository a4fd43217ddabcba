"""The use cases of core/services.py over in-memory fakes: DOMAIN.md's invariants and rules."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.phones import PhoneNumbers
from core.accounts import Account, Role, User
from core.clock import FixedClock
from core.envelopes import Document, Envelope, EnvelopeStatus, Signer, SignerStatus
from core.errors import (
    CapReached,
    ChannelUnavailable,
    CooldownActive,
    DomainError,
    InsufficientCredits,
    InvalidInput,
    InvalidState,
    LinkTokenInvalid,
    NotAllowed,
    NotFound,
    QuoteChanged,
)
from core.ledger import PAID_REASONS, LedgerEntry, Pool, Reason
from core.linking import hash_token, new_token
from core.notifications import Channel, DeliveryStatus, Kind, Notification
from core.plans import Catalogue, SealPricing
from core.ports import LedgerRepository, NotificationDraft
from core.services import Lacre, Policy
from tests.support.fakes import (
    FakeDatabase,
    FakePhoneBook,
    FakeUnitOfWorkFactory,
    fake_lacre,
)

MARIA = "+5511987654321"  # mobile
JOAO_LANDLINE = "+551134567890"
CARLA_US = "+14155552671"
_telegram_ids = itertools.count(500_000)


@dataclass
class World:
    lacre: Lacre
    uow: FakeUnitOfWorkFactory
    clock: FixedClock
    account: Account
    admin: User
    member: User

    @property
    def db(self) -> FakeDatabase:
        return self.uow.db

    def balances(self, account_id: int | None = None) -> tuple[int, int]:
        b = self.lacre.balances(account_id or self.account.id)
        return b.credits, b.notification_credits

    def entries(self, account_id: int | None = None) -> list[LedgerEntry]:
        with self.uow(write=False) as uow:
            return uow.ledger.entries(account_id)

    def notifications(self, envelope_id: int) -> list[Notification]:
        with self.uow(write=False) as uow:
            return uow.notifications.for_envelope(envelope_id)

    def stored(self, envelope_id: int) -> Envelope:
        with self.uow(write=False) as uow:
            env = uow.envelopes.get(envelope_id)
        assert env is not None
        return env

    def signer_id(self, envelope_id: int, email: str) -> int:
        sid = self.stored(envelope_id).signer_by_email(email).id
        assert sid is not None
        return sid

    def set_status(self, notification_id: int, status: DeliveryStatus) -> None:
        with self.uow() as uow:
            assert uow.notifications.set_status(notification_id, status, self.clock.now())
            uow.commit()


def link(lacre: Lacre, account_id: int, role: Role, name: str) -> User:
    return lacre.link(lacre.create_link_token(account_id, role), next(_telegram_ids), name)


def make_world(
    clock: FixedClock,
    *,
    credits: int = 10,
    notification_credits: int = 0,
    plan: str = "personalizado",
    policy: Policy | None = None,
    catalogue: Catalogue | None = None,
    db: FakeDatabase | None = None,
    name: str = "Imobiliária Sol",
) -> World:
    """An account holding exactly `credits` and 5 + `notification_credits`."""
    lacre, factory = fake_lacre(clock, db=db, policy=policy, catalogue=catalogue)
    account = lacre.create_account(name, plan)
    if credits or notification_credits:
        lacre.grant(
            account.id,
            credits=credits,
            notification_credits=notification_credits,
            idempotency_key=f"seed:{account.id}",
        )
    return World(
        lacre,
        factory,
        clock,
        account,
        link(lacre, account.id, Role.ADMIN, "Ana Admin"),
        link(lacre, account.id, Role.MEMBER, "Bruno Membro"),
    )


def person(name: str, phone: str | None = None, order: int = 0) -> Signer:
    return Signer(name, f"{name.lower()}@example.com", phone, order)


def add_envelope(
    w: World,
    ref: str = "ENV-1",
    *,
    status: EnvelopeStatus = EnvelopeStatus.RASCUNHO,
    signers: list[Signer] | None = None,
    ordered: bool = False,
    quoted: int | None = 3,
    icp: bool = False,
    documents: int = 1,
    created_by: int | None = None,
    expires_in: timedelta | None = timedelta(days=7),
    account_id: int | None = None,
) -> int:
    env = Envelope(
        account_id=account_id or w.account.id,
        ref=ref,
        title="Contrato de locação",
        expires_at=w.clock.now() + expires_in if expires_in is not None else None,
        status=status,
        ordered=ordered,
        quoted_credits=quoted,
        icp=icp,
        created_by=created_by,
        documents=[Document(f"doc{i}.pdf", 2) for i in range(documents)],
        signers=signers
        if signers is not None
        else [person("Maria", MARIA), person("Joao", JOAO_LANDLINE)],
    )
    with w.uow() as uow:
        uow.envelopes.add(env, w.clock.now())
        uow.commit()
    assert env.id is not None
    return env.id


def sealed_envelope(w: World, **kwargs: Any) -> int:
    env_id = add_envelope(w, **kwargs)
    w.lacre.seal(w.admin.id, env_id)
    w.clock.advance(timedelta(minutes=5))  # past the cooldown of the seal's own e-mails
    return env_id


@pytest.fixture
def w(clock: FixedClock) -> World:
    return make_world(clock)


# == accounts, plans and grants =================================================================


def test_a_new_account_gets_its_plans_monthly_credits_and_five_notification_credits(
    clock: FixedClock,
) -> None:
    lacre, _ = fake_lacre(clock)
    account = lacre.create_account("Escritório Lima", "profissional")
    assert (account.credits, account.notification_credits) == (120, 5)
    assert account.plan_renews_at == clock.now().replace(month=12)
    assert lacre.balances(account.id).credits == 120


def test_the_custom_plan_starts_without_credits_but_with_the_five_notification_credits(
    clock: FixedClock,
) -> None:
    lacre, _ = fake_lacre(clock)
    account = lacre.create_account("Grande Cliente", "personalizado")
    assert (account.credits, account.notification_credits) == (0, 5)


@pytest.mark.parametrize(
    ("name", "plan", "timezone", "field"),
    [
        ("Sol", "ouro", "America/Sao_Paulo", "plan"),
        ("   ", "essencial", "America/Sao_Paulo", "name"),
        ("Sol", "essencial", "America/Atlantida", "timezone"),
    ],
)
def test_an_account_with_a_bad_plan_name_or_time_zone_is_refused_and_nothing_is_created(
    clock: FixedClock, name: str, plan: str, timezone: str, field: str
) -> None:
    lacre, factory = fake_lacre(clock)
    with pytest.raises(InvalidInput) as refused:
        lacre.create_account(name, plan, timezone)
    assert refused.value.data["field"] == field
    assert factory.db.commits == 0 and factory.db.committed.accounts == {}


def test_two_grants_at_the_same_instant_both_count(w: World) -> None:
    before = w.balances()
    w.lacre.grant(w.account.id, credits=2)
    w.lacre.grant(w.account.id, credits=2)
    assert w.balances() == (before[0] + 4, before[1])


def test_a_grant_repeated_with_its_idempotency_key_counts_once(w: World) -> None:
    before = w.balances()
    for _ in range(3):
        w.lacre.grant(w.account.id, notification_credits=7, idempotency_key="ticket-42")
    assert w.balances() == (before[0], before[1] + 7)


@pytest.mark.parametrize(("credits", "notification_credits"), [(-1, 0), (0, -3), (0, 0), (-5, 5)])
def test_a_grant_must_give_something_and_never_takes_away(
    w: World, credits: int, notification_credits: int
) -> None:
    before = w.db.snapshot()
    with pytest.raises(InvalidInput):
        w.lacre.grant(w.account.id, credits=credits, notification_credits=notification_credits)
    assert w.db.snapshot() == before


def test_a_grant_to_an_unknown_account_is_not_found(w: World) -> None:
    with pytest.raises(NotFound):
        w.lacre.grant(999, credits=1)


def test_a_purchase_is_credited_once_per_payment_id(w: World) -> None:
    assert w.lacre.purchase(w.account.id, "notif-10", "pay-1") is True
    assert w.lacre.purchase(w.account.id, "notif-10", "pay-1") is False
    assert w.lacre.purchase(w.account.id, "notif-50", "pay-2") is True
    assert w.balances() == (10, 5 + 10 + 50)
    assert [e.reason for e in w.entries() if e.reason is Reason.PURCHASE] == [Reason.PURCHASE] * 2


def test_a_purchase_of_an_unknown_pack_changes_nothing(w: World) -> None:
    before = w.db.snapshot()
    with pytest.raises(InvalidInput):
        w.lacre.purchase(w.account.id, "notif-9999", "pay-1")
    assert w.db.snapshot() == before


# == invariant 1: no balance below zero ==========================================================


def test_invariant_1_a_seal_without_enough_credits_is_refused_and_changes_nothing(
    clock: FixedClock,
) -> None:
    w = make_world(clock, credits=2)
    env_id = add_envelope(w, quoted=3)
    before = w.db.snapshot()
    with pytest.raises(InsufficientCredits) as refused:
        w.lacre.seal(w.admin.id, env_id)
    assert refused.value.code == "insufficient_credits"
    assert refused.value.data == {"pool": "credits", "needed": 3, "balance": 2, "missing": 1}
    assert w.db.snapshot() == before
    assert w.stored(env_id).status is EnvelopeStatus.RASCUNHO


def test_invariant_1_a_paid_send_without_notification_credits_is_refused_and_changes_nothing(
    clock: FixedClock,
) -> None:
    w = make_world(clock, catalogue=Catalogue(starting_notification_credits=0))
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    assert w.balances() == (7, 0)
    before = w.db.snapshot()
    with pytest.raises(InsufficientCredits) as refused:
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "tap-1")
    assert refused.value.data == {"pool": "notification", "needed": 1, "balance": 0, "missing": 1}
    assert w.db.snapshot() == before


def test_invariant_1_credits_never_pay_for_notifications_nor_the_reverse(
    clock: FixedClock,
) -> None:
    w = make_world(clock, credits=0, notification_credits=100)
    env_id = add_envelope(w, quoted=1)
    with pytest.raises(InsufficientCredits) as refused:
        w.lacre.seal(w.admin.id, env_id)
    assert refused.value.data["pool"] == "credits"
    assert w.balances() == (0, 105)


def test_invariant_1_a_direct_charge_above_the_balance_is_refused(w: World) -> None:
    before = w.db.snapshot()
    with pytest.raises(InsufficientCredits):
        w.lacre.charge(w.account.id, Pool.CREDITS, 11, Reason.SEAL, "k-1", actor_user_id=w.admin.id)
    assert w.db.snapshot() == before
    assert w.lacre.charge(
        w.account.id, Pool.CREDITS, 10, Reason.SEAL, "k-2", actor_user_id=w.admin.id
    )
    assert w.balances()[0] == 0


# == invariant 2: a seal is charged exactly once ================================================


def test_invariant_2_a_seal_is_charged_once_whatever_the_retries(w: World) -> None:
    env_id = add_envelope(w, quoted=3)
    first = w.lacre.seal(w.admin.id, env_id, expected_total=3)
    replays = [w.lacre.seal(w.admin.id, env_id, expected_total=3) for _ in range(3)]
    without_quote = w.lacre.seal(w.admin.id, env_id)
    assert (first.charged, first.already_sealed, first.balance_after) == (3, False, 7)
    assert all(r.charged == 0 and r.already_sealed and r.balance_after == 7 for r in replays)
    assert without_quote.already_sealed
    assert [e.amount for e in w.entries() if e.reason is Reason.SEAL] == [-3]
    assert len(w.notifications(env_id)) == 2  # the free e-mails were queued once too


def test_invariant_2_a_seal_refused_for_lack_of_credits_is_charged_once_after_a_top_up(
    clock: FixedClock,
) -> None:
    w = make_world(clock, credits=1)
    env_id = add_envelope(w, quoted=3)
    with pytest.raises(InsufficientCredits):
        w.lacre.seal(w.admin.id, env_id)
    w.lacre.grant(w.account.id, credits=5)
    assert w.lacre.seal(w.admin.id, env_id).charged == 3
    assert w.lacre.seal(w.admin.id, env_id).charged == 0
    assert w.balances()[0] == 3


def test_invariant_2_icp_is_charged_beside_the_seal_once_each(clock: FixedClock) -> None:
    catalogue = Catalogue(pricing=SealPricing(base=2, per_extra_document=1, icp_per_signer=1))
    w = make_world(clock, credits=20, catalogue=catalogue)
    env_id = add_envelope(w, quoted=None, icp=True, documents=3)
    quote = w.lacre.quote_seal(w.admin.id, env_id)
    assert [(line.reason, line.credits) for line in quote.lines] == [
        (Reason.SEAL, 4),
        (Reason.ICP, 2),
    ]
    assert (quote.total, quote.balance_after, quote.missing) == (6, 14, 0)
    w.lacre.seal(w.admin.id, env_id, expected_total=6)
    w.lacre.seal(w.admin.id, env_id, expected_total=6)
    assert sorted((e.reason, e.amount) for e in w.entries() if e.amount < 0) == [
        (Reason.ICP, -2),
        (Reason.SEAL, -4),
    ]
    assert w.balances()[0] == 14


def test_a_seal_whose_price_changed_since_the_quote_is_refused_and_changes_nothing(
    w: World,
) -> None:
    env_id = add_envelope(w, quoted=4)
    before = w.db.snapshot()
    with pytest.raises(QuoteChanged) as refused:
        w.lacre.seal(w.admin.id, env_id, expected_total=3)
    assert refused.value.data == {"before": 3, "now": 4}
    assert w.db.snapshot() == before


def test_an_envelope_the_platform_quotes_at_zero_credits_seals_without_a_charge(
    w: World,
) -> None:
    env_id = add_envelope(w, quoted=0)
    result = w.lacre.seal(w.admin.id, env_id, expected_total=0)
    assert (result.charged, result.already_sealed) == (0, False)
    assert w.stored(env_id).status is EnvelopeStatus.PENDENTE
    assert w.lacre.seal(w.admin.id, env_id).already_sealed  # a double tap is no error
    assert w.balances()[0] == 10
    assert [e for e in w.entries() if e.envelope_id == env_id] == []


def test_sealing_a_draft_without_signers_is_refused_and_charges_nothing(w: World) -> None:
    env_id = add_envelope(w, signers=[])
    before = w.db.snapshot()
    with pytest.raises(InvalidState):
        w.lacre.seal(w.admin.id, env_id)
    assert w.db.snapshot() == before


# == invariant 3: balances are the sum of an append-only ledger =================================


def assert_balances_match_the_ledger(w: World, account_id: int) -> None:
    entries = w.entries(account_id)
    credits = sum(e.amount for e in entries if e.pool is Pool.CREDITS)
    notification = sum(e.amount for e in entries if e.pool is Pool.NOTIFICATION)
    assert w.balances(account_id) == (credits, notification)
    assert min(credits, notification) >= 0


def test_invariant_3_each_balance_equals_the_sum_of_its_entries_after_every_kind_of_move(
    clock: FixedClock,
) -> None:
    w = make_world(clock, credits=10, plan="essencial")
    assert_balances_match_the_ledger(w, w.account.id)
    env_id = sealed_envelope(w)
    assert_balances_match_the_ledger(w, w.account.id)
    maria = w.signer_id(env_id, "maria@example.com")
    sent = w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "tap-1")
    w.set_status(sent.notification.id, DeliveryStatus.FAILED)
    w.lacre.refund(sent.notification.id)
    w.lacre.purchase(w.account.id, "notif-10", "pay-1")
    w.lacre.charge(w.account.id, Pool.CREDITS, 2, Reason.ICP, "icp-1", actor_user_id=w.admin.id)
    assert_balances_match_the_ledger(w, w.account.id)
    assert w.balances() == (30 + 10 - 3 - 2, 5 + 10)


def test_invariant_3_the_ledger_is_only_ever_appended_to(w: World) -> None:
    assert not {"update", "delete", "remove", "set_amount"} & set(dir(LedgerRepository))
    history: list[LedgerEntry] = w.entries()
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    for step in range(3):
        sent = w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, f"t{step}")
        w.set_status(sent.notification.id, DeliveryStatus.FAILED)
        w.lacre.refund(sent.notification.id)
        w.clock.advance(timedelta(minutes=2))
        now = w.entries()
        assert now[: len(history)] == history  # earlier entries untouched, in order
        assert len(now) > len(history)
        history = now
    assert len({e.idempotency_key for e in history}) == len(history)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["grant", "seal", "sms", "whatsapp", "fail", "refund", "wait"]),
            st.integers(min_value=0, max_value=4),
        ),
        max_size=25,
    )
)
def test_invariants_1_and_3_hold_after_any_sequence_of_moves(
    steps: list[tuple[str, int]],
) -> None:
    clock = FixedClock(datetime.fromisoformat("2026-11-27T12:00:00+00:00"))
    w = make_world(clock, credits=3)
    envs = [add_envelope(w, f"ENV-{i}", quoted=i + 1) for i in range(5)]
    sent: list[int] = []
    for n, (action, pick) in enumerate(steps):
        env_id = envs[pick]
        try:
            if action == "grant":
                w.lacre.grant(w.account.id, credits=pick, notification_credits=1)
            elif action == "seal":
                w.lacre.seal(w.admin.id, env_id)
            elif action in ("sms", "whatsapp"):
                sid = w.signer_id(env_id, "maria@example.com")
                r = w.lacre.request_send(w.admin.id, env_id, sid, Channel(action), f"k{n}")
                sent.append(r.notification.id)
            elif action == "fail" and sent:
                w.set_status(sent[pick % len(sent)], DeliveryStatus.FAILED)
            elif action == "refund" and sent:
                w.lacre.refund(sent[pick % len(sent)])
            else:
                w.clock.advance(timedelta(minutes=pick))
        except DomainError:
            pass
        except AssertionError:
            if action != "fail":  # set_status refuses a move backwards; that is fine
                raise
        assert_balances_match_the_ledger(w, w.account.id)
    seals = [e.envelope_id for e in w.entries() if e.reason is Reason.SEAL]
    assert len(seals) == len(set(seals))
    refunds = [e.notification_id for e in w.entries() if e.reason is Reason.REFUND]
    assert len(refunds) == len(set(refunds))


# == invariant 4: one confirmation, one send, one charge; refunds once ==========================


def test_invariant_4_one_confirmation_key_gives_one_send_and_one_charge(w: World) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    first = w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "confirm-7")
    taps = [w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "confirm-7")]
    w.clock.advance(timedelta(hours=1))  # even after the cooldown, a replay stays a replay
    taps.append(w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "confirm-7"))
    assert not first.duplicate and all(t.duplicate for t in taps)
    assert {t.notification.id for t in taps} == {first.notification.id}
    paid = [n for n in w.notifications(env_id) if n.cost > 0]
    assert len(paid) == 1
    charges = [e for e in w.entries() if e.reason is Reason.SMS]
    assert [(e.amount, e.notification_id) for e in charges] == [(-1, first.notification.id)]
    assert w.balances()[1] == 4


def test_the_same_confirmation_key_in_another_account_is_another_send(
    clock: FixedClock,
) -> None:
    db = FakeDatabase()
    sol = make_world(clock, db=db, name="Sol")
    lua = make_world(clock, db=db, name="Lua")
    sol_env, lua_env = sealed_envelope(sol), sealed_envelope(lua, ref="ENV-1")
    sol_maria = sol.signer_id(sol_env, "maria@example.com")
    lua_maria = lua.signer_id(lua_env, "maria@example.com")
    mine = sol.lacre.request_send(sol.admin.id, sol_env, sol_maria, Channel.SMS, "1")
    theirs = lua.lacre.request_send(lua.admin.id, lua_env, lua_maria, Channel.SMS, "1")
    assert not theirs.duplicate
    assert theirs.notification.account_id == lua.account.id
    assert theirs.notification.id != mine.notification.id
    assert lua.balances()[1] == 4 and sol.balances()[1] == 4


def test_a_confirmation_key_reused_for_another_signer_is_refused_not_mistaken(
    w: World,
) -> None:
    env_id = sealed_envelope(w, signers=[person("Maria", MARIA), person("Rita", "+5521998765432")])
    maria = w.signer_id(env_id, "maria@example.com")
    rita = w.signer_id(env_id, "rita@example.com")
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "nonce-1")
    before = w.db.snapshot()
    with pytest.raises(InvalidInput):
        w.lacre.request_send(w.admin.id, env_id, rita, Channel.SMS, "nonce-1")
    with pytest.raises(InvalidInput):
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, "nonce-1")
    assert w.db.snapshot() == before


@pytest.mark.parametrize(
    "status", [DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED]
)
def test_invariant_4_a_send_that_did_not_fail_is_never_refunded(
    w: World, status: DeliveryStatus
) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    sent = w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "tap")
    if status is not DeliveryStatus.QUEUED:
        w.set_status(sent.notification.id, status)
    before = w.db.snapshot()
    assert w.lacre.refund(sent.notification.id) is False
    assert w.db.snapshot() == before


def test_invariant_4_a_failed_paid_send_is_refunded_exactly_once(w: World) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    sent = w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, "tap")
    w.set_status(sent.notification.id, DeliveryStatus.FAILED)
    assert [w.lacre.refund(sent.notification.id) for _ in range(3)] == [True, False, False]
    refunds = [e for e in w.entries() if e.reason is Reason.REFUND]
    assert [(e.amount, e.pool, e.notification_id) for e in refunds] == [
        (1, Pool.NOTIFICATION, sent.notification.id)
    ]
    assert w.balances()[1] == 5


def test_invariant_4_no_refund_without_a_charge_to_give_back(w: World) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    with w.uow() as uow:  # a paid row that, by some bug, was never charged
        row = uow.notifications.add(
            NotificationDraft(
                w.account.id,
                env_id,
                maria,
                Channel.SMS,
                Kind.RESEND,
                MARIA,
                1,
                1,
                "x",
                "orphan",
                w.admin.id,
            ),
            w.clock.now(),
        )
        assert row is not None
        uow.notifications.set_status(row.id, DeliveryStatus.FAILED, w.clock.now())
        uow.commit()
    before = w.db.snapshot()
    assert w.lacre.refund(row.id) is False
    assert w.lacre.refund(987_654) is False
    assert w.db.snapshot() == before


def test_invariant_4_a_free_email_is_never_charged_nor_refunded(w: World) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    sent = w.lacre.request_send(w.admin.id, env_id, maria, Channel.EMAIL, "tap")
    assert (sent.notification.cost, sent.notification.destination) == (0, "maria@example.com")
    w.set_status(sent.notification.id, DeliveryStatus.FAILED)
    assert w.lacre.refund(sent.notification.id) is False
    assert w.balances() == (7, 5)
    assert [e for e in w.entries() if e.notification_id == sent.notification.id] == []


def test_a_send_whose_price_changed_since_the_quote_is_refused_and_changes_nothing(
    w: World,
) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    quote = w.lacre.quote_send(w.admin.id, env_id, maria, Channel.SMS)
    assert (quote.quote.cost, quote.balance_before, quote.balance_after) == (1, 5, 4)
    before = w.db.snapshot()
    with pytest.raises(QuoteChanged):
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "k", expected_cost=2)
    assert w.db.snapshot() == before


# == invariant 5: only pending signers of pending, unexpired envelopes ==========================


def _signed(w: World) -> tuple[int, int]:
    env_id = sealed_envelope(w)
    w.lacre.record_signature("ENV-1", "maria@example.com", w.account.id)
    return env_id, w.signer_id(env_id, "maria@example.com")


def _draft(w: World) -> tuple[int, int]:
    env_id = add_envelope(w)
    return env_id, w.signer_id(env_id, "maria@example.com")


def _after(action: str) -> Callable[[World], tuple[int, int]]:
    def build(w: World) -> tuple[int, int]:
        env_id = sealed_envelope(w)
        getattr(w.lacre, action)(w.admin.id, env_id)
        return env_id, w.signer_id(env_id, "maria@example.com")

    return build


def _completed(w: World) -> tuple[int, int]:
    env_id = sealed_envelope(w, signers=[person("Maria", MARIA)])
    w.lacre.record_signature("ENV-1", "maria@example.com")
    return env_id, w.signer_id(env_id, "maria@example.com")


def _expired(w: World) -> tuple[int, int]:
    env_id = sealed_envelope(w)
    w.clock.advance(timedelta(days=8))
    return env_id, w.signer_id(env_id, "maria@example.com")


def _not_in_turn(w: World) -> tuple[int, int]:
    env_id = sealed_envelope(
        w, ordered=True, signers=[person("Joao", JOAO_LANDLINE, 0), person("Maria", MARIA, 1)]
    )
    return env_id, w.signer_id(env_id, "maria@example.com")


@pytest.mark.parametrize(
    ("setup", "reason", "shown"),
    [
        (_signed, "signed", "pendente"),
        (_draft, "envelope_state", "rascunho"),
        (_after("block"), "envelope_state", "bloqueado"),
        (_after("cancel"), "envelope_state", "cancelado"),
        (_completed, "signed", "concluido"),
        (_expired, "expired", "expirado"),
        (_not_in_turn, "not_in_turn", "pendente"),
    ],
    ids=["signed", "draft", "blocked", "cancelled", "completed", "expired", "not-in-turn"],
)
@pytest.mark.parametrize("channel", list(Channel))
def test_invariant_5_nobody_but_a_pending_signer_in_turn_of_a_live_envelope_is_notified(
    w: World,
    setup: Callable[[World], tuple[int, int]],
    reason: str,
    shown: str,
    channel: Channel,
) -> None:
    env_id, signer_id = setup(w)
    w.clock.advance(timedelta(minutes=5))
    before = w.db.snapshot()
    with pytest.raises(ChannelUnavailable) as quoted:
        w.lacre.quote_send(w.admin.id, env_id, signer_id, channel)
    with pytest.raises(ChannelUnavailable) as refused:
        w.lacre.request_send(w.admin.id, env_id, signer_id, channel, "tap")
    assert quoted.value.data == refused.value.data
    assert refused.value.data["reason"] == reason
    assert refused.value.data["status"] == shown
    assert w.db.snapshot() == before


def test_invariant_5_a_seal_queues_free_emails_only_for_the_signers_in_turn(w: World) -> None:
    env_id = add_envelope(
        w,
        ordered=True,
        signers=[person("Ana", None, 0), person("Bia", None, 0), person("Caio", None, 1)],
    )
    result = w.lacre.seal(w.admin.id, env_id)
    rows = w.notifications(env_id)
    assert [r.id for r in rows] == list(result.notified)
    assert [(r.destination, r.channel, r.cost, r.kind) for r in rows] == [
        ("ana@example.com", Channel.EMAIL, 0, Kind.SIGNATURE_REQUEST),
        ("bia@example.com", Channel.EMAIL, 0, Kind.SIGNATURE_REQUEST),
    ]


def test_invariant_5_the_next_signer_is_emailed_only_when_the_whole_position_has_signed(
    w: World,
) -> None:
    env_id = sealed_envelope(
        w,
        ordered=True,
        signers=[person("Ana", None, 0), person("Bia", None, 0), person("Caio", None, 1)],
    )
    w.lacre.record_signature("ENV-1", "ana@example.com")
    assert len(w.notifications(env_id)) == 2
    env = w.lacre.record_signature("ENV-1", "bia@example.com")
    assert env.status is EnvelopeStatus.PENDENTE
    assert [r.destination for r in w.notifications(env_id)][2:] == ["caio@example.com"]
    assert w.lacre.record_signature("ENV-1", "caio@example.com").status is (
        EnvelopeStatus.CONCLUIDO
    )
    assert len(w.notifications(env_id)) == 3


def test_invariant_5_unblocking_emails_the_signers_in_turn_again_for_free(w: World) -> None:
    env_id = sealed_envelope(w)
    w.lacre.block(w.admin.id, env_id)
    w.lacre.unblock(w.admin.id, env_id)
    rows = w.notifications(env_id)
    assert [(r.destination, r.cost) for r in rows[2:]] == [
        ("maria@example.com", 0),
        ("joao@example.com", 0),
    ]
    w.clock.advance(timedelta(minutes=5))
    w.lacre.block(w.admin.id, env_id)
    w.lacre.unblock(w.admin.id, env_id)
    assert len(w.notifications(env_id)) == 6  # each unblock is its own request
    assert w.balances() == (7, 5)


def test_invariant_5_resending_to_all_emails_only_pending_signers_in_turn(w: World) -> None:
    env_id = sealed_envelope(w, signers=[person("Ana"), person("Bia"), person("Caio")])
    w.lacre.record_signature("ENV-1", "bia@example.com")
    ids = w.lacre.resend_all_email(w.admin.id, env_id, "all-1")
    rows = [n for n in w.notifications(env_id) if n.id in ids]
    assert [r.destination for r in rows] == ["ana@example.com", "caio@example.com"]
    assert all(r.kind is Kind.RESEND and r.cost == 0 for r in rows)


def test_the_same_resend_to_all_tap_twice_answers_with_the_first_rows(w: World) -> None:
    env_id = sealed_envelope(w)
    w.clock.advance(timedelta(minutes=5))
    first = w.lacre.resend_all_email(w.admin.id, env_id, "tap-9")
    count = len(w.notifications(env_id))
    again = w.lacre.resend_all_email(w.admin.id, env_id, "tap-9")
    assert again == first
    assert len(w.notifications(env_id)) == count


def test_invariant_5_resending_to_all_on_an_expired_envelope_sends_nothing(w: World) -> None:
    env_id = sealed_envelope(w)
    w.clock.advance(timedelta(days=30))
    before = w.db.snapshot()
    with pytest.raises(ChannelUnavailable) as refused:
        w.lacre.resend_all_email(w.admin.id, env_id, "all-1")
    assert refused.value.data == {"reason": "nobody", "status": "expirado"}
    assert w.db.snapshot() == before


# == invariant 6: nothing spends without an authorised user =====================================


def test_invariant_6_an_unlinked_user_can_neither_seal_nor_send(w: World) -> None:
    env_id = add_envelope(w)
    maria_env = sealed_envelope(w, ref="ENV-2")
    maria = w.signer_id(maria_env, "maria@example.com")
    assert w.admin.telegram_user_id is not None
    assert w.lacre.unlink(w.admin.telegram_user_id) is True
    assert w.lacre.unlink(w.admin.telegram_user_id) is False
    before = w.db.snapshot()
    with pytest.raises(NotAllowed):
        w.lacre.seal(w.admin.id, env_id)
    with pytest.raises(NotAllowed):
        w.lacre.request_send(w.admin.id, maria_env, maria, Channel.SMS, "tap")
    with pytest.raises(NotAllowed):
        w.lacre.quote_seal(w.admin.id, env_id)
    assert w.db.snapshot() == before
    assert w.lacre.actor(w.admin.telegram_user_id) is None


def test_invariant_6_an_unknown_user_can_neither_seal_nor_send(w: World) -> None:
    env_id = add_envelope(w)
    before = w.db.snapshot()
    with pytest.raises(NotAllowed) as refused:
        w.lacre.seal(424242, env_id)
    assert refused.value.code == "not_allowed"
    assert w.db.snapshot() == before


def test_invariant_6_every_paid_entry_names_the_user_who_confirmed_it(w: World) -> None:
    env_id = sealed_envelope(w, created_by=w.member.id)
    maria = w.signer_id(env_id, "maria@example.com")
    w.lacre.request_send(w.member.id, env_id, maria, Channel.SMS, "tap")
    paid = [e for e in w.entries() if e.reason in PAID_REASONS]
    assert [(e.reason, e.actor_user_id) for e in paid] == [
        (Reason.SEAL, w.admin.id),
        (Reason.SMS, w.member.id),
    ]


@pytest.mark.parametrize("who", ["stranger", "unlinked", "other-account"])
def test_invariant_6_a_direct_charge_needs_a_linked_user_of_the_same_account(
    clock: FixedClock, who: str
) -> None:
    db = FakeDatabase()
    w = make_world(clock, db=db)
    other = make_world(clock, db=db, name="Outra")
    actor = {"stranger": 777, "unlinked": w.member.id, "other-account": other.admin.id}[who]
    if who == "unlinked":
        assert w.member.telegram_user_id is not None
        w.lacre.unlink(w.member.telegram_user_id)
    before = db.snapshot()
    with pytest.raises(NotAllowed):
        w.lacre.charge(w.account.id, Pool.CREDITS, 1, Reason.SEAL, "k", actor_user_id=actor)
    assert db.snapshot() == before


# == invariant 7 and roles: another account's envelope is "not found" ===========================


USE_CASES: dict[str, Callable[[Lacre, int, int, int], object]] = {
    "envelope": lambda lacre, user, env, _s: lacre.envelope(user, env),
    "quote_seal": lambda lacre, user, env, _s: lacre.quote_seal(user, env),
    "seal": lambda lacre, user, env, _s: lacre.seal(user, env),
    "block": lambda lacre, user, env, _s: lacre.block(user, env),
    "unblock": lambda lacre, user, env, _s: lacre.unblock(user, env),
    "cancel": lambda lacre, user, env, _s: lacre.cancel(user, env),
    "delete_draft": lambda lacre, user, env, _s: lacre.delete_draft(user, env),
    "quote_send": lambda lacre, user, env, s: lacre.quote_send(user, env, s, Channel.SMS),
    "request_send": lambda lacre, user, env, s: lacre.request_send(
        user, env, s, Channel.SMS, "tap"
    ),
    "resend_all_email": lambda lacre, user, env, _s: lacre.resend_all_email(user, env, "all"),
}


@pytest.mark.parametrize("use_case", sorted(USE_CASES))
def test_invariant_7_another_accounts_envelope_is_simply_not_found(
    clock: FixedClock, use_case: str
) -> None:
    db = FakeDatabase()
    mine = make_world(clock, db=db, name="Sol")
    theirs = make_world(clock, db=db, name="Lua")
    env_id = sealed_envelope(theirs)
    signer = theirs.signer_id(env_id, "maria@example.com")
    before = db.snapshot()
    with pytest.raises(NotFound) as hidden:
        USE_CASES[use_case](mine.lacre, mine.admin.id, env_id, signer)
    with pytest.raises(NotFound) as missing:
        USE_CASES[use_case](mine.lacre, mine.admin.id, 999_999, signer)
    assert hidden.value.data == {"what": "envelope", "id": env_id}
    assert str(hidden.value) == str(missing.value)  # indistinguishable from no envelope
    assert db.snapshot() == before


@pytest.mark.parametrize("use_case", sorted(USE_CASES))
def test_a_member_cannot_see_or_touch_an_envelope_someone_else_created(
    w: World, use_case: str
) -> None:
    env_id = sealed_envelope(w, created_by=w.admin.id)
    signer = w.signer_id(env_id, "maria@example.com")
    before = w.db.snapshot()
    with pytest.raises(NotFound):
        USE_CASES[use_case](w.lacre, w.member.id, env_id, signer)
    assert w.db.snapshot() == before


def test_an_admin_sees_every_envelope_of_the_account_and_a_member_only_their_own(
    w: World,
) -> None:
    by_admin = add_envelope(w, "ENV-A", created_by=w.admin.id)
    by_member = add_envelope(w, "ENV-M", created_by=w.member.id)
    imported = add_envelope(w, "ENV-I", created_by=None)
    for env_id in (by_admin, by_member, imported):
        assert w.lacre.envelope(w.admin.id, env_id).id == env_id
    assert w.lacre.envelope(w.member.id, by_member).ref == "ENV-M"
    for env_id in (by_admin, imported):
        with pytest.raises(NotFound):
            w.lacre.envelope(w.member.id, env_id)


def test_a_signature_event_for_a_ref_in_two_accounts_must_name_the_account(
    clock: FixedClock,
) -> None:
    db = FakeDatabase()
    sol = make_world(clock, db=db, name="Sol")
    lua = make_world(clock, db=db, name="Lua")
    sol_env, lua_env = sealed_envelope(sol), sealed_envelope(lua)
    before = db.snapshot()
    with pytest.raises(InvalidInput) as refused:
        sol.lacre.record_signature("ENV-1", "maria@example.com")
    assert refused.value.data["field"] == "account"
    assert db.snapshot() == before
    sol.lacre.record_signature("ENV-1", "maria@example.com", lua.account.id)
    assert not lua.stored(lua_env).signer_by_email("maria@example.com").is_pending
    assert sol.stored(sol_env).signer_by_email("maria@example.com").is_pending


def test_a_signature_event_for_an_unknown_ref_or_signer_is_not_found(w: World) -> None:
    sealed_envelope(w)
    with pytest.raises(NotFound):
        w.lacre.record_signature("ENV-404", "maria@example.com")
    with pytest.raises(NotFound):
        w.lacre.record_signature("ENV-1", "ninguem@example.com")


# == channels: cooldown, daily cap, regions, landlines ==========================================


def test_the_cooldown_applies_per_signer_and_channel(w: World) -> None:
    env_id = sealed_envelope(w, signers=[person("Maria", MARIA), person("Rita", "+5521998765432")])
    maria = w.signer_id(env_id, "maria@example.com")
    rita = w.signer_id(env_id, "rita@example.com")
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "1")
    w.clock.advance(timedelta(seconds=20))
    before = w.db.snapshot()
    with pytest.raises(CooldownActive) as waiting:
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "2")
    assert waiting.value.code == "cooldown"
    assert waiting.value.data == {"reason": "cooldown", "seconds": 41}
    assert w.db.snapshot() == before
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, "3")  # other channel
    w.lacre.request_send(w.admin.id, env_id, rita, Channel.SMS, "4")  # other signer
    w.clock.advance(timedelta(seconds=40))
    assert not w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "5").duplicate
    assert w.balances()[1] == 5 - 4


def test_the_free_email_of_the_seal_starts_the_email_cooldown(w: World) -> None:
    env_id = add_envelope(w)
    w.lacre.seal(w.admin.id, env_id)
    maria = w.signer_id(env_id, "maria@example.com")
    with pytest.raises(CooldownActive):
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.EMAIL, "e1")
    w.clock.advance(timedelta(minutes=1))
    assert w.lacre.request_send(w.admin.id, env_id, maria, Channel.EMAIL, "e1").notification


def test_the_daily_cap_of_paid_sends_refuses_the_next_one_until_a_day_has_passed(
    clock: FixedClock,
) -> None:
    w = make_world(clock, notification_credits=20, policy=Policy(daily_paid_cap=2))
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "1")
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, "2")
    w.clock.advance(timedelta(minutes=5))
    before = w.db.snapshot()
    with pytest.raises(CapReached) as capped:
        w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "3")
    assert capped.value.data == {"cap": 2}
    assert w.db.snapshot() == before
    w.lacre.request_send(w.admin.id, env_id, maria, Channel.EMAIL, "free")  # e-mail is uncapped
    w.clock.advance(timedelta(days=1))
    assert not w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "4").duplicate


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.WHATSAPP])
def test_a_phone_outside_the_allowed_regions_is_refused_before_any_charge(
    w: World, channel: Channel
) -> None:
    env_id = sealed_envelope(w, signers=[person("Carla", CARLA_US)])
    carla = w.signer_id(env_id, "carla@example.com")
    before = w.db.snapshot()
    with pytest.raises(ChannelUnavailable) as refused:
        w.lacre.request_send(w.admin.id, env_id, carla, channel, "tap")
    assert refused.value.data == {"reason": "country", "region": "US"}
    assert w.db.snapshot() == before


def test_allowing_a_region_lets_its_numbers_receive(clock: FixedClock) -> None:
    w = make_world(clock, policy=Policy(allowed_regions=("BR", "US")))
    env_id = sealed_envelope(w, signers=[person("Carla", CARLA_US)])
    carla = w.signer_id(env_id, "carla@example.com")
    sent = w.lacre.request_send(w.admin.id, env_id, carla, Channel.WHATSAPP, "tap")
    assert sent.notification.destination == f"whatsapp:{CARLA_US}"


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.WHATSAPP])
def test_a_landline_is_refused_before_any_charge(w: World, channel: Channel) -> None:
    env_id = sealed_envelope(w)
    joao = w.signer_id(env_id, "joao@example.com")
    before = w.db.snapshot()
    with pytest.raises(ChannelUnavailable) as refused:
        w.lacre.quote_send(w.admin.id, env_id, joao, channel)
    assert refused.value.data == {"reason": "not_mobile"}
    with pytest.raises(ChannelUnavailable):
        w.lacre.request_send(w.admin.id, env_id, joao, channel, "tap")
    assert w.db.snapshot() == before
    assert w.lacre.request_send(w.admin.id, env_id, joao, Channel.EMAIL, "mail").notification


def test_a_signer_without_a_phone_can_only_be_emailed(w: World) -> None:
    env_id = sealed_envelope(w, signers=[person("Davi")])
    davi = w.signer_id(env_id, "davi@example.com")
    for channel in (Channel.SMS, Channel.WHATSAPP):
        with pytest.raises(ChannelUnavailable) as refused:
            w.lacre.request_send(w.admin.id, env_id, davi, channel, f"tap-{channel}")
        assert refused.value.data == {"reason": "no_phone"}
    assert w.lacre.request_send(w.admin.id, env_id, davi, Channel.EMAIL, "m").notification


def test_an_sms_carries_the_quoted_text_and_whatsapp_the_template_address(w: World) -> None:
    env_id = sealed_envelope(w)
    maria = w.signer_id(env_id, "maria@example.com")
    quote = w.lacre.quote_send(w.admin.id, env_id, maria, Channel.SMS)
    sms = w.lacre.request_send(w.admin.id, env_id, maria, Channel.SMS, "s", expected_cost=1)
    wa = w.lacre.request_send(w.admin.id, env_id, maria, Channel.WHATSAPP, "w")
    assert sms.notification.body == quote.quote.text
    assert sms.notification.body.endswith("Assine em https://app.assin.com.br/assinar/ENV-1")
    assert (sms.notification.destination, sms.notification.segments) == (MARIA, 1)
    assert (wa.notification.destination, wa.notification.body) == (f"whatsapp:{MARIA}", "")
    assert sms.balance_after == 4 and wa.balance_after == 3


# == link tokens ================================================================================


def test_a_link_token_carries_at_least_128_random_bits_in_deep_link_safe_characters() -> None:
    asked: list[int] = []

    def random_bytes(n: int) -> bytes:
        asked.append(n)
        return b"\xff\xfe" * (n // 2)

    token = new_token(random_bytes)
    assert asked[0] * 8 >= 128
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,64}", token)
    assert "-" in token or "_" in token  # bytes that base64 would turn into + and /
    many = {new_token() for _ in range(200)}
    assert len(many) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22,64}", t) for t in many)


def test_a_link_token_is_stored_only_as_its_hash(w: World) -> None:
    token = w.lacre.create_link_token(w.account.id, Role.ADMIN)
    stored = w.db.committed.link_tokens
    assert hash_token(token) in stored
    assert token not in repr(stored)
    assert len(hash_token(token)) == 64


def test_a_link_token_links_once_with_its_role(w: World) -> None:
    token = w.lacre.create_link_token(w.account.id, Role.ADMIN)
    user = w.lacre.link(token, 31337, "Carlos")
    assert (user.account_id, user.role, user.telegram_user_id) == (w.account.id, Role.ADMIN, 31337)
    before = w.db.snapshot()
    with pytest.raises(LinkTokenInvalid) as reused:
        w.lacre.link(token, 31338, "Outro")
    assert reused.value.data == {"reason": "used"}
    assert w.db.snapshot() == before
    assert w.lacre.actor(31338) is None


def test_a_link_token_works_for_15_minutes_and_not_a_moment_longer(w: World) -> None:
    late = w.lacre.create_link_token(w.account.id)
    in_time = w.lacre.create_link_token(w.account.id)
    w.clock.advance(timedelta(minutes=14, seconds=59))
    assert w.lacre.link(in_time, 1, "Ana").role is Role.MEMBER
    w.clock.advance(timedelta(seconds=1))
    before = w.db.snapshot()
    with pytest.raises(LinkTokenInvalid) as expired:
        w.lacre.link(late, 2, "Bia")
    assert expired.value.data == {"reason": "expired"}
    assert w.db.snapshot() == before


@pytest.mark.parametrize(
    "token", ["", "a b", "x" * 65, "olá", "abc/def", "valid-looking-but-unknown_token12345"]
)
def test_a_malformed_or_unknown_link_token_links_nobody(w: World, token: str) -> None:
    before = w.db.snapshot()
    with pytest.raises(LinkTokenInvalid) as refused:
        w.lacre.link(token, 4444, "Intrusa")
    assert refused.value.data == {"reason": "unknown"}
    assert w.db.snapshot() == before


def test_a_link_token_for_an_unknown_account_is_not_made(w: World) -> None:
    with pytest.raises(NotFound):
        w.lacre.create_link_token(999)


def test_linking_again_moves_the_telegram_user_to_the_new_account(clock: FixedClock) -> None:
    db = FakeDatabase()
    sol = make_world(clock, db=db, name="Sol")
    lua = make_world(clock, db=db, name="Lua")
    assert sol.admin.telegram_user_id is not None
    moved = lua.lacre.link(
        lua.lacre.create_link_token(lua.account.id), sol.admin.telegram_user_id, "Ana"
    )
    actor = sol.lacre.actor(sol.admin.telegram_user_id)
    assert actor is not None and actor.id == moved.id and actor.account_id == lua.account.id
    env_id = add_envelope(sol)
    with pytest.raises(NotAllowed):  # the old user is no longer linked
        sol.lacre.seal(sol.admin.id, env_id)


# == the fakes themselves =======================================================================


def test_the_fake_unit_of_work_throws_away_what_was_not_committed(w: World) -> None:
    before = w.db.snapshot()
    with w.uow() as uow:
        uow.ledger.credit(w.account.id, Pool.CREDITS, 50)
    with w.uow() as uow:
        uow.ledger.credit(w.account.id, Pool.CREDITS, 50)
        uow.rollback()
        assert uow.ledger.balances(w.account.id).credits == 10
        uow.commit()
    assert w.db.snapshot() == before
    with w.uow(write=False) as uow, pytest.raises(AssertionError, match="read-only"):
        uow.ledger.credit(w.account.id, Pool.CREDITS, 1)


def test_reads_go_through_read_only_units_of_work_and_writes_commit_once(w: World) -> None:
    env_id = add_envelope(w)
    commits = w.db.commits
    w.lacre.quote_seal(w.admin.id, env_id)
    w.lacre.envelope(w.admin.id, env_id)
    w.lacre.balances(w.account.id)
    assert w.db.commits == commits
    w.lacre.seal(w.admin.id, env_id)
    assert w.db.commits == commits + 1


@pytest.mark.parametrize(
    "raw",
    [
        "(11) 98765-4321",
        "011 98765-4321",
        "+55 11 98765-4321",
        "11987654321",
        "(11) 3456-7890",
        "(11) 8765-4321",
        "98765-4321",
        "8765-4321",
        "abc",
        "+1 415 555 2671",
        "(21) 99876-5432",
    ],
)
def test_the_fake_phone_book_agrees_with_the_real_one(raw: str) -> None:
    real, fake = PhoneNumbers(), FakePhoneBook()

    def outcome(book: FakePhoneBook | PhoneNumbers) -> tuple[str, bool, str] | str:
        try:
            e164 = book.normalize(raw)
        except InvalidInput as exc:
            return f"refused:{exc.data.get('reason') == 'no_ddd'}"
        return e164, book.is_mobile(e164), book.region(e164)

    assert outcome(fake) == outcome(real)


def test_an_envelope_loaded_and_changed_but_not_saved_changes_nothing(w: World) -> None:
    env_id = add_envelope(w)
    with w.uow() as uow:
        env = uow.envelopes.get(env_id)
        assert env is not None
        env.status = EnvelopeStatus.CANCELADO
        env.signers[0].status = SignerStatus.ASSINADO
        uow.commit()
    assert w.stored(env_id).status is EnvelopeStatus.RASCUNHO
    assert w.stored(env_id).signers[0].is_pending
