"""A hypothesis state machine drives the real use cases on SQLite against a plain model.

Every step is a user, operator, provider or platform action (grants, purchases, seals with
double taps and stale quotes, paid and free sends, delivery failures, refunds, blocks, unblocks,
cancels, signatures, the clock moving, a member unlinking, a stranger from another account
trying). After every step the database must match the model and DOMAIN.md's invariants 1-7
must hold, as seen by the model and by `lacre ledger audit`.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from bot.bootstrap import App, bootstrap
from core.accounts import Role
from core.clock import FixedClock
from core.errors import (
    CapReached,
    ChannelUnavailable,
    CooldownActive,
    DomainError,
    InsufficientCredits,
    InvalidInput,
    InvalidState,
    NotAllowed,
    NotFound,
    QuoteChanged,
)
from core.importing import parse_import
from core.notifications import Channel, DeliveryStatus
from core.plans import Catalogue
from core.services import Policy
from storage.audit import audit
from tests.conftest import START, make_settings
from tests.support.databases import fresh_sqlite

T = TypeVar("T")

# DOMAIN.md's figures, written out here so the model does not borrow them from the code.
PLAN_CREDITS = {
    "pessoa-fisica": 20,
    "essencial": 30,
    "profissional": 120,
    "empresarial": 250,
    "personalizado": 0,
}
# Configured low (DOMAIN.md's default is 5) so the notification pool runs dry in an example.
STARTING_NOTIFICATION_CREDITS = 1
COOLDOWN = timedelta(minutes=1)
DAILY_PAID_CAP = 2  # low, so the cap is reached inside one example
RANK = {"queued": 0, "sent": 3, "delivered": 4, "failed": 4}
TITLES = ("Contrato de locação", "Procuração", "Aditivo nº 2", "Distrato")
MOBILE, LANDLINE = "(11) 98{:03d}-{:04d}", "(11) 3{:03d}-{:04d}"

_example_ids = itertools.count(1)
_burst_keys = itertools.count(1)
_telegram_ids = itertools.count(5_000_000)


@dataclass(frozen=True)
class EnvelopeSpec:
    signers: list[tuple[str, int, bool]]  # (phone kind, queue order, signed on the platform)
    documents: int
    ordered: bool
    icp: bool
    quoted: int | None
    hours: int  # expires this many hours (and 30 minutes) from now
    creator: str | None
    title: str
    status: str  # "pendente": sealed on the platform before Lacre saw it


# Actors and signers weighted towards the ones that can act, so most steps get somewhere.
ACTOR = st.sampled_from(["admin"] * 6 + ["member", "stranger"])
SIGNER = st.tuples(
    st.sampled_from(["mobile", "mobile", "landline", "none"]),
    st.integers(0, 2),
    st.sampled_from([False, False, True]),
)
ENVELOPE = st.builds(
    EnvelopeSpec,
    signers=st.one_of(st.lists(SIGNER, min_size=1, max_size=3), st.lists(SIGNER, max_size=3)),
    documents=st.sampled_from([1, 1, 1, 2, 0]),
    ordered=st.booleans(),
    icp=st.booleans(),
    quoted=st.one_of(st.none(), st.integers(0, 4)),
    hours=st.sampled_from([720, 720, 72, 24, 1, -1]),
    creator=st.sampled_from(["admin", "admin", "member", None]),
    title=st.sampled_from(TITLES),
    status=st.sampled_from(["rascunho", "pendente"]),
)
# What the use cases answered, over all examples: the test checks the strategies keep
# reaching the paths that matter, not only the refusals.
OUTCOMES: Counter[str] = Counter()


@dataclass
class MSigner:
    id: int
    email: str
    phone: bool
    mobile: bool
    order: int
    signed: bool = False


@dataclass
class MEnvelope:
    id: int
    ref: str
    created_by: int | None
    quoted: int | None
    icp: bool
    ordered: bool
    documents: int
    expires_at: datetime
    signers: list[MSigner]
    status: str = "rascunho"
    sealed: bool = False

    def expired(self, now: datetime) -> bool:
        return self.status == "pendente" and self.expires_at <= now

    def in_turn(self) -> list[MSigner]:
        pending = [s for s in self.signers if not s.signed]
        if not self.ordered or not pending:
            return pending
        first = min(s.order for s in pending)
        return [s for s in pending if s.order == first]

    def seal_lines(self) -> list[tuple[str, int]]:
        """(reason, credits): the platform's quote, else 1 plus 1 per signer for ICP."""
        if self.quoted is not None:
            lines = [("seal", self.quoted)]
        else:
            lines = [("seal", 1), ("icp", len(self.signers) if self.icp else 0)]
        return [line for line in lines if line[1] > 0]


@dataclass
class MNotification:
    envelope: int
    signer: int
    channel: str
    kind: str
    cost: int
    created_at: datetime
    status: str = "queued"
    id: int | None = None  # known for sends and seal requests, which return it
    refunded: bool = False

    def row(self) -> tuple[Any, ...]:
        return (self.envelope, self.signer, self.channel, self.kind, self.cost, self.status)


Entry = tuple[str, int, str, int | None, int | None, int | None]


@dataclass
class Model:
    """Balances, the ledger as (pool, amount, reason, actor, envelope, notification), and
    everything the use cases must remember: envelopes, sends, cooldowns, used keys."""

    credits: int = 0
    notification: int = 0
    entries: list[Entry] = field(default_factory=list)
    used_keys: set[str] = field(default_factory=set)
    envelopes: list[MEnvelope] = field(default_factory=list)
    notifications: list[MNotification] = field(default_factory=list)
    last_sent: dict[tuple[int, str], datetime] = field(default_factory=dict)
    send_keys: dict[str, MNotification] = field(default_factory=dict)

    def book(
        self,
        pool: str,
        amount: int,
        reason: str,
        actor: int | None = None,
        envelope: int | None = None,
        notification: int | None = None,
    ) -> None:
        if amount == 0:
            return
        self.entries.append((pool, amount, reason, actor, envelope, notification))
        if pool == "credits":
            self.credits += amount
        else:
            self.notification += amount

    def queue_emails(self, env: MEnvelope, signers: list[MSigner], now: datetime) -> None:
        for s in signers:
            self.notifications.append(
                MNotification(env.id, s.id, "email", "signature_request", 0, now)
            )
            self.last_sent[(s.id, "email")] = now


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One migrated SQLite file for every example; each example opens new accounts in it."""
    with fresh_sqlite(tmp_path_factory.mktemp("model")) as url:
        app = bootstrap(
            make_settings(url),
            clock=FixedClock(START),
            policy=Policy(cooldown=COOLDOWN, daily_paid_cap=DAILY_PAID_CAP),
            catalogue=Catalogue(starting_notification_credits=STARTING_NOTIFICATION_CREDITS),
        )
        yield app
        app.engine.dispose()


class LedgerMachine(RuleBasedStateMachine):
    """One example: a fresh account (plus a stranger's) living through the rules below."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app, self.lacre = app, app.lacre
        assert isinstance(app.clock, FixedClock)
        self.clock = app.clock
        self.tag = f"x{next(_example_ids)}"
        self.model = Model()
        self.snapshot: list[tuple[Any, ...]] = []
        self.member_linked = True

    # -- set-up ------------------------------------------------------------------------------
    @initialize(
        # The plan without credits first (Hypothesis leans to a strategy's first value) and
        # three times as often: it is where a seal runs short, which the closing check wants
        # reached; evenly weighted that came up 4-22 times in 500 examples, now and then none.
        plan=st.sampled_from(["personalizado"] * 3 + sorted(set(PLAN_CREDITS) - {"personalizado"})),
        envelopes=st.lists(ENVELOPE, min_size=1, max_size=3),
    )
    def open_accounts(self, plan: str, envelopes: list[EnvelopeSpec]) -> None:
        """Our account with its admin and member, a stranger's account, a few drafts."""
        account = self.lacre.create_account(f"Conta {self.tag}", plan)
        self.account = account.id
        self.model.book("credits", PLAN_CREDITS[plan], "plan_grant")
        self.model.book("notification", STARTING_NOTIFICATION_CREDITS, "plan_grant")
        self.users = {
            "admin": self._link(account.id, Role.ADMIN),
            "member": self._link(account.id, Role.MEMBER),
        }
        stranger_account = self.lacre.create_account(f"Outra {self.tag}", "essencial")
        self.stranger_account = stranger_account.id
        self.users["stranger"] = self._link(stranger_account.id, Role.ADMIN)
        start = self.lacre.balances(stranger_account.id)
        # Its plan grant and starting notification credits: the only entries it will ever have.
        self.stranger_before = (start.credits, start.notification_credits, 2)
        self.telegram = {role: tg for role, (_, tg) in self.users.items()}
        for spec in envelopes:
            self._import(spec)

    def _link(self, account_id: int, role: Role) -> tuple[int, int]:
        telegram_id = next(_telegram_ids)
        user = self.lacre.link(self.lacre.create_link_token(account_id, role), telegram_id, "U")
        return user.id, telegram_id

    def uid(self, actor: str) -> int:
        return self.users[actor][0]

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # -- helpers -----------------------------------------------------------------------------
    def attempt(
        self, label: str, expected: type[DomainError] | None, call: Callable[[], T]
    ) -> T | None:
        """Run a use case; it must succeed, or refuse with exactly the expected error."""
        OUTCOMES[f"{label}: {expected.__name__ if expected else 'done'}"] += 1
        if expected is None:
            return call()
        with pytest.raises(DomainError) as info:
            call()
        assert type(info.value) is expected, (expected, info.value, info.value.data)
        return None

    def visibility(self, actor: str, env: MEnvelope) -> type[DomainError] | None:
        """Invariant 7: a stranger, or a member on someone else's envelope, finds nothing."""
        if actor == "stranger":
            return NotFound
        if actor == "member":
            if not self.member_linked:
                return NotAllowed
            if env.created_by != self.uid("member"):
                return NotFound
        return None

    @staticmethod
    def pick(index: int, items: list[T], likely: Callable[[T], bool], weight: int = 3) -> T:
        """Any item, the `likely` ones `weight` times as often: most steps then get somewhere."""
        pool = [x for x in items if likely(x)] * weight + items
        return pool[index % len(pool)]

    # -- operator and payments ---------------------------------------------------------------
    @rule(
        credits=st.integers(-2, 15),
        notification=st.integers(-1, 8),
        key=st.integers(0, 3),
    )
    def grant(self, credits: int, notification: int, key: int) -> None:
        k = f"{self.tag}-g{key}"
        bad = credits < 0 or notification < 0 or (credits == 0 and notification == 0)
        result = self.attempt(
            "grant",
            InvalidInput if bad else None,
            lambda: self.lacre.grant(
                self.account,
                credits=credits,
                notification_credits=notification,
                reason="modelo",
                idempotency_key=k,
            ),
        )
        if result is None:
            return
        # A replayed key grants nothing again, pool by pool.
        for pool, amount in (("credits", credits), ("notification", notification)):
            if amount and f"grant:{k}:{pool}" not in self.model.used_keys:
                self.model.used_keys.add(f"grant:{k}:{pool}")
                self.model.book(pool, amount, "adjustment")
        assert (result.credits, result.notification_credits) == (
            self.model.credits,
            self.model.notification,
        )

    @rule(pack=st.sampled_from(["notif-10", "notif-50", "notif-7"]), payment=st.integers(0, 2))
    def purchase(self, pack: str, payment: int) -> None:
        sizes = {p.code: p.notification_credits for p in self.lacre.catalogue.packs}
        pid = f"{self.tag}-p{payment}"
        done = self.attempt(
            "purchase",
            None if pack in sizes else InvalidInput,
            lambda: self.lacre.purchase(self.account, pack, pid),
        )
        if pack not in sizes:
            return
        fresh = f"purchase:{pid}" not in self.model.used_keys
        assert done is fresh
        if fresh:
            self.model.used_keys.add(f"purchase:{pid}")
            self.model.book("notification", sizes[pack], "purchase")

    # -- envelopes ---------------------------------------------------------------------------
    @rule(spec=ENVELOPE)
    def import_envelope(self, spec: EnvelopeSpec) -> None:
        self._import(spec)

    def _import(self, spec: EnvelopeSpec) -> None:
        """The platform's import file, one envelope: a draft, or one that cannot be sealed."""
        signers, ordered, creator = spec.signers, spec.ordered, spec.creator
        documents, quoted, icp = spec.documents, spec.quoted, spec.icp
        n = len(self.model.envelopes)
        ref = f"{self.tag}-{n}"
        expires = self.now + timedelta(hours=spec.hours, minutes=30)
        specs = []
        # Only an envelope sealed on the platform can arrive with signatures.
        signed = [was and spec.status == "pendente" for _, _, was in signers]
        for i, (phone, order, _) in enumerate(signers):
            row: dict[str, Any] = {
                "name": f"Signatária {i}",
                "email": f"s{i}@{ref}.example.com",
                "order": order if ordered else 0,
                "status": "assinado" if signed[i] else "pendente",
            }
            if phone != "none":
                row["phone"] = (MOBILE if phone == "mobile" else LANDLINE).format(n % 1000, i)
            specs.append(row)
        created_by = self.uid(creator) if creator else None
        data: dict[str, Any] = {
            "ref": ref,
            "title": spec.title,
            "status": spec.status,
            "ordered": ordered,
            "icp": icp,
            "expires_at": expires.isoformat(),
            "documents": [{"name": f"d{i}.pdf", "pages": 1} for i in range(documents)],
            "signers": specs,
        }
        if quoted is not None:
            data["credits"] = quoted
        if created_by is not None:
            data["created_by"] = created_by
        self.lacre.import_envelopes(
            parse_import({"account_id": self.account, "envelopes": [data]}, self.lacre.phones)
        )
        with self.app.uow(write=False) as uow:
            env = uow.envelopes.get_by_ref(self.account, ref)
            assert env is not None and env.id is not None
            ids = [s.id for s in env.signers]
        self.model.envelopes.append(
            MEnvelope(
                env.id,
                ref,
                created_by,
                quoted,
                icp,
                ordered,
                documents,
                expires,
                [
                    MSigner(sid, row["email"], "phone" in row, kind == "mobile", row["order"], done)
                    for sid, row, (kind, _, _), done in zip(
                        ids, specs, signers, signed, strict=True
                    )
                    if sid is not None
                ],
                status=spec.status,
            )
        )

    @rule(
        index=st.integers(0, 50),
        actor=ACTOR,
        quote=st.sampled_from(["none", "right", "right", "stale"]),
        taps=st.integers(1, 3),
    )
    def seal(self, index: int, actor: str, quote: str, taps: int) -> None:
        """A confirmation, possibly tapped again (double taps, replays): one charge at most."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "rascunho")
        for _ in range(taps):
            self._seal_once(env, actor, quote)

    def _seal_once(self, env: MEnvelope, actor: str, quote: str) -> None:
        total = sum(c for _, c in env.seal_lines())
        expected_total = {"none": None, "right": total, "stale": total + 1}[quote]
        error: type[DomainError] | None = self.visibility(actor, env)
        already = error is None and env.sealed
        if error is None and not already:
            if expected_total is not None and expected_total != total:
                error = QuoteChanged
            elif (
                env.status != "rascunho"
                or not env.signers
                or not env.documents
                or env.expires_at <= self.now
            ):
                error = InvalidState
            elif self.model.credits < total:
                error = InsufficientCredits
        result = self.attempt(
            "seal",
            error,
            lambda: self.lacre.seal(self.uid(actor), env.id, expected_total=expected_total),
        )
        if result is None:
            return
        if already:
            assert (result.charged, result.already_sealed) == (0, True)
            assert result.balance_after == self.model.credits
            return
        for reason, credits in env.seal_lines():
            self.model.book("credits", -credits, reason, self.uid(actor), env.id)
        env.status, env.sealed = "pendente", True
        before = len(self.model.notifications)
        self.model.queue_emails(env, env.in_turn(), self.now)
        assert (result.charged, result.already_sealed) == (total, False)
        assert result.balance_after == self.model.credits
        assert len(result.notified) == len(self.model.notifications) - before
        for n, nid in zip(self.model.notifications[before:], result.notified, strict=True):
            n.id = nid

    @rule(
        index=st.integers(0, 50),
        action=st.sampled_from(["block", "unblock", "cancel", "delete_draft"]),
        actor=ACTOR,
    )
    def transition(self, index: int, action: str, actor: str) -> None:
        likely = {"unblock": "bloqueado", "delete_draft": "rascunho"}.get(action, "pendente")
        self._transition(
            self.pick(index, self.model.envelopes, lambda e: e.status == likely), action, actor
        )

    @rule(index=st.integers(0, 50), wait=st.sampled_from([60, 3600, 86400, 40 * 86400]))
    def block_for_edits_then_unblock(self, index: int, wait: int) -> None:
        """Block for edits, time passes, unblock: the signers in turn hear again (if unexpired)."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "pendente")
        self._transition(env, "block", "admin")
        self.clock.advance(timedelta(seconds=wait))
        self._transition(env, "unblock", "admin")

    def _transition(self, env: MEnvelope, action: str, actor: str) -> None:
        now = self.now
        error = self.visibility(actor, env)
        if error is None:
            allowed = {
                "block": env.status == "pendente"
                and not env.expired(now)
                and not any(s.signed for s in env.signers),
                "unblock": env.status == "bloqueado",
                "cancel": env.status == "pendente",
                "delete_draft": env.status == "rascunho",
            }[action]
            error = None if allowed else InvalidState
        result = self.attempt(
            action, error, lambda: getattr(self.lacre, action)(self.uid(actor), env.id)
        )
        if result is None:
            return
        env.status = {
            "block": "bloqueado",
            "unblock": "pendente",
            "cancel": "cancelado",
            "delete_draft": "excluido",
        }[action]
        if action == "unblock" and not env.expired(now):
            self.model.queue_emails(env, env.in_turn(), now)
        assert result.status.value == env.status

    @rule(index=st.integers(0, 50), signer=st.integers(0, 5))
    def sign(self, index: int, signer: int) -> None:
        """The platform reports a signature; the next signers in the queue get their turn."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "pendente")
        if not env.signers:
            return
        s = env.signers[signer % len(env.signers)]
        ok = (
            env.status == "pendente"
            and not env.expired(self.now)
            and not s.signed
            and s in env.in_turn()
        )
        result = self.attempt(
            "sign",
            None if ok else InvalidState,
            lambda: self.lacre.record_signature(env.ref, s.email.upper(), self.account),
        )
        if result is None:
            return
        before = {x.id for x in env.in_turn()}
        s.signed = True
        if not env.in_turn():
            env.status = "concluido"
        else:
            self.model.queue_emails(env, [x for x in env.in_turn() if x.id not in before], self.now)
        assert result.status.value == env.status

    # -- notifications -----------------------------------------------------------------------
    @rule(
        index=st.integers(0, 50),
        signer=st.integers(0, 5),
        channel=st.sampled_from([Channel.EMAIL, Channel.SMS, Channel.SMS, Channel.WHATSAPP]),
        key=st.integers(0, 6),
        actor=ACTOR,
        stale=st.sampled_from([False, False, False, True]),
    )
    def request_send(
        self, index: int, signer: int, channel: Channel, key: int, actor: str, stale: bool
    ) -> None:
        """One confirmation of a resend: at most one paid send and one charge per key."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "pendente")
        s = env.signers[signer % len(env.signers)] if env.signers else None
        self._send(env, s, channel, f"{self.tag}-k{key}", actor, stale)

    @rule(index=st.integers(0, 50))
    def resend_to_everyone_paid(self, index: int) -> None:
        """The owner confirms SMS and WhatsApp to every signer in turn: the pool and the daily
        cap run out here, and each refusal leaves nothing behind."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "pendente")
        for s in env.in_turn():
            for channel in (Channel.SMS, Channel.WHATSAPP):
                self._send(env, s, channel, f"{self.tag}-b{next(_burst_keys)}", "admin", False)

    def _send(
        self,
        env: MEnvelope,
        s: MSigner | None,
        channel: Channel,
        k: str,
        actor: str,
        stale: bool,
    ) -> None:
        now = self.now
        cost = 0 if channel is Channel.EMAIL else 1
        expected_cost = cost + 1 if stale else None
        error = self.visibility(actor, env)
        first = self.model.send_keys.get(k)
        duplicate = error is None and first is not None
        if first is not None and error is None:
            same = (first.envelope, first.signer, first.channel) == (
                env.id,
                s.id if s else None,
                channel.value,
            )
            error = None if same else InvalidInput  # a key confirms one send, not another
        if error is None and not duplicate:
            last = self.model.last_sent.get((s.id, channel.value)) if s else None
            paid_today = sum(
                1
                for n in self.model.notifications
                if n.cost and n.created_at >= now - timedelta(days=1)
            )
            if s is None:
                error = NotFound
            elif env.status != "pendente" or env.expired(now) or s.signed or s not in env.in_turn():
                error = ChannelUnavailable  # invariant 5
            elif channel.is_paid and not (s.phone and s.mobile):
                error = ChannelUnavailable
            elif last is not None and now - last < COOLDOWN:
                error = CooldownActive
            elif stale:
                error = QuoteChanged
            elif cost and paid_today >= DAILY_PAID_CAP:
                error = CapReached
            elif self.model.notification < cost:
                error = InsufficientCredits
        signer_id = s.id if s else 10**9
        result = self.attempt(
            "request_send",
            error,
            lambda: self.lacre.request_send(
                self.uid(actor), env.id, signer_id, channel, k, expected_cost=expected_cost
            ),
        )
        if result is None:
            return
        assert result.duplicate is duplicate
        if first is not None:
            assert result.notification.id == first.id
        else:
            assert s is not None
            n = MNotification(
                env.id, s.id, channel.value, "resend", cost, now, id=result.notification.id
            )
            self.model.notifications.append(n)
            self.model.send_keys[k] = n
            self.model.last_sent[(s.id, channel.value)] = now
            self.model.book("notification", -cost, channel.value, self.uid(actor), env.id, n.id)
        assert result.balance_after == self.model.notification

    def has_known_notifications(self) -> bool:
        return any(n.id is not None for n in self.model.notifications)

    @precondition(has_known_notifications)
    @rule(
        pick=st.integers(0, 50),
        status=st.sampled_from(["sent", "delivered", "failed", "failed"]),
        refunds=st.integers(0, 2),
    )
    def provider_reports(self, pick: int, status: str, refunds: int) -> None:
        """A delivery status from the provider (statuses only move forward); on a failure the
        delivery worker asks for the refund, and a repeated callback asks again."""
        known = [n for n in self.model.notifications if n.id is not None]
        n = self.pick(pick, known, lambda n: n.cost > 0 and RANK[n.status] < 4, weight=8)
        self._report(n, status, refunds)

    @rule(index=st.integers(0, 50), channel=st.sampled_from([Channel.SMS, Channel.WHATSAPP]))
    def paid_send_fails_and_is_refunded(self, index: int, channel: Channel) -> None:
        """A paid resend the provider rejects: refunded once, however often it is reported."""
        env = self.pick(index, self.model.envelopes, lambda e: e.status == "pendente")
        for s in env.in_turn():
            key = f"{self.tag}-f{next(_burst_keys)}"
            self._send(env, s, channel, key, "admin", False)
            if key in self.model.send_keys:
                self._report(self.model.send_keys[key], "failed", 2)
                return

    def _report(self, n: MNotification, status: str, refunds: int) -> None:
        with self.app.uow() as uow:
            assert n.id is not None
            moved = uow.notifications.set_status(n.id, DeliveryStatus(status), self.now)
            uow.commit()
        should = n.status not in ("delivered", "failed") and RANK[status] > RANK[n.status]
        assert moved is should
        OUTCOMES[f"provider {status}: {moved}"] += 1
        if moved:
            n.status = status
        if status == "failed":
            self._refund(n, refunds)

    @precondition(has_known_notifications)
    @rule(pick=st.integers(0, 50), times=st.integers(1, 3), bogus=st.booleans())
    def refund(self, pick: int, times: int, bogus: bool) -> None:
        """Refunds happen once, only for a paid send that failed (or never, for a bad id)."""
        known = [n for n in self.model.notifications if n.id is not None]
        n = self.pick(pick, known, lambda n: n.cost > 0 and n.status == "failed", weight=8)
        self._refund(n, times, bogus)

    def _refund(self, n: MNotification, times: int, bogus: bool = False) -> None:
        for _ in range(times):
            assert n.id is not None
            done = self.lacre.refund(10**9 if bogus else n.id)
            should = not bogus and n.cost > 0 and n.status == "failed" and not n.refunded
            assert done is should
            OUTCOMES[f"refund: {done}"] += 1
            if should:
                n.refunded = True
                self.model.book("notification", n.cost, "refund", None, n.envelope, n.id)

    # -- time and people ---------------------------------------------------------------------
    @rule(seconds=st.sampled_from([5, 59, 61, 600, 3600, 6 * 3600, 86400]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule()
    def member_unlinks(self) -> None:
        assert self.lacre.unlink(self.telegram["member"]) is self.member_linked
        self.member_linked = False

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def database_matches_the_model(self) -> None:
        m = self.model
        with self.app.engine.connect() as conn:
            balances = conn.execute(
                text("SELECT credits, notification_credits FROM accounts WHERE id = :a"),
                {"a": self.account},
            ).one()
            entries = [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT id, pool, amount, reason, actor_user_id, envelope_id, "
                        "notification_id, idempotency_key, created_at FROM ledger_entries "
                        "WHERE account_id = :a ORDER BY id"
                    ),
                    {"a": self.account},
                )
            ]
            sends = conn.execute(
                text(
                    "SELECT envelope_id, signer_id, channel, kind, cost, status "
                    "FROM notifications WHERE account_id = :a"
                ),
                {"a": self.account},
            ).all()
            statuses = dict(
                conn.execute(
                    text("SELECT id, status FROM envelopes WHERE account_id = :a"),
                    {"a": self.account},
                ).all()
            )
            signed = dict(
                conn.execute(
                    text(
                        "SELECT s.id, s.status FROM signers s JOIN envelopes e "
                        "ON e.id = s.envelope_id WHERE e.account_id = :a"
                    ),
                    {"a": self.account},
                ).all()
            )
            stranger = conn.execute(
                text(
                    "SELECT credits, notification_credits, (SELECT COUNT(*) FROM ledger_entries "
                    "WHERE account_id = :a) FROM accounts WHERE id = :a"
                ),
                {"a": self.stranger_account},
            ).one()
            violations = audit(conn)

        # 1: never below zero; the model's balance is the one the owner was shown.
        assert min(balances) >= 0
        assert tuple(balances) == (m.credits, m.notification)
        # 3: the cached balances are the ledger's sums, and the ledger only ever grows.
        assert balances.credits == sum(e[2] for e in entries if e[1] == "credits")
        assert balances.notification_credits == sum(e[2] for e in entries if e[1] == "notification")
        assert entries[: len(self.snapshot)] == self.snapshot
        self.snapshot = entries
        # 2, 4, 6: exactly the entries the model booked: one per seal, charge and refund,
        # each paid debit carrying the authorised user who confirmed it.
        assert Counter(e[1:7] for e in entries) == Counter(m.entries)
        assert all(
            e[4] in (self.uid("admin"), self.uid("member"))
            for e in entries
            if e[3] in ("seal", "icp", "sms", "whatsapp")
        )
        # 4, 5: exactly the sends the model allowed (pending signers, in turn, unexpired).
        assert Counter(tuple(r) for r in sends) == Counter(n.row() for n in m.notifications)
        assert statuses == {e.id: e.status for e in m.envelopes}
        assert signed == {
            s.id: "assinado" if s.signed else "pendente" for e in m.envelopes for s in e.signers
        }
        # 7: the stranger's account was never touched by anything done here.
        assert tuple(stranger) == self.stranger_before
        assert violations == []


# The strategies must keep reaching the interesting paths, not only the refusals.
REACHED = {
    "seal: done",
    "seal: InsufficientCredits",
    "seal: QuoteChanged",
    "request_send: done",
    "request_send: InsufficientCredits",
    "request_send: CapReached",
    "request_send: CooldownActive",
    "refund: True",
    "sign: done",
    "block: done",
    "unblock: done",
    "cancel: done",
}


def test_the_ledger_and_envelope_lifecycle_follow_the_model(shared_app: App) -> None:
    examples = int(os.environ.get("LEDGER_MODEL_EXAMPLES", "500"))  # fewer for a quick look
    # Each path comes up 5-100 times in 500 examples, but how often swings widely from run to
    # run, so a run that misses one by chance gets more examples (fresh ones: Hypothesis draws
    # a new seed per run) before the check fails; a path the strategies cannot reach still
    # fails it, after three runs.
    for _ in range(3 if examples >= 500 else 1):
        run_state_machine_as_test(
            lambda: LedgerMachine(shared_app),
            settings=settings(
                max_examples=examples,
                stateful_step_count=15,
                deadline=None,
                # Each step runs real SQLite transactions plus a full audit: slow by design.
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        if examples < 500 or not REACHED - set(OUTCOMES):
            return
    assert not REACHED - set(OUTCOMES), REACHED - set(OUTCOMES)
