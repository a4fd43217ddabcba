"""Use cases: the only way the bot, the CLI and the scheduler change state."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.accounts import DEFAULT_TIMEZONE, Account, Role, User
from core.clock import Clock
from core.envelopes import Envelope, Signer
from core.errors import (
    CapReached,
    ChannelUnavailable,
    CooldownActive,
    InsufficientCredits,
    InvalidInput,
    InvalidState,
    LinkTokenInvalid,
    NotAllowed,
    NotFound,
    QuoteChanged,
)
from core.importing import ImportBatch
from core.ledger import Balances, EntryDraft, Pool, Reason
from core.linking import LINK_TOKEN_TTL, LinkToken, hash_token, looks_like_token, new_token
from core.notifications import (
    DEFAULT_COOLDOWN,
    Channel,
    DeliveryStatus,
    Kind,
    Notification,
    NotificationQuote,
    quote,
    sms_segments,
)
from core.plans import Catalogue, add_months
from core.ports import NotificationDraft, PhoneBook, UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True)
class Policy:
    """Operator settings the use cases obey."""

    cooldown: timedelta = DEFAULT_COOLDOWN
    daily_paid_cap: int = 50
    allowed_regions: tuple[str, ...] = ("BR",)
    signing_url_template: str = "https://app.assin.com.br/assinar/{ref}"


@dataclass(frozen=True)
class QuoteLine:
    reason: Reason
    credits: int


@dataclass(frozen=True)
class SealQuote:
    envelope_id: int
    lines: tuple[QuoteLine, ...]
    balance_before: int

    @property
    def total(self) -> int:
        return sum(line.credits for line in self.lines)

    @property
    def balance_after(self) -> int:
        return self.balance_before - self.total

    @property
    def missing(self) -> int:
        return max(0, self.total - self.balance_before)


@dataclass(frozen=True)
class SealResult:
    envelope_id: int
    charged: int  # 0 when this call found the seal already done
    already_sealed: bool
    balance_after: int
    notified: tuple[int, ...] = ()  # outbox ids of the free signature requests


@dataclass(frozen=True)
class SendQuote:
    envelope_id: int
    signer_id: int
    quote: NotificationQuote
    destination: str
    balance_before: int

    @property
    def balance_after(self) -> int:
        return self.balance_before - self.quote.cost


@dataclass(frozen=True)
class SendResult:
    notification: Notification
    duplicate: bool  # True: this key was already used, nothing new was charged or queued
    balance_after: int


@dataclass(frozen=True)
class ImportResult:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


# Typographic punctuation has plain GSM-7 stand-ins; anything else outside GSM-7 becomes "?".
_GSM_STAND_INS = str.maketrans(
    {"—": "-", "–": "-", "‐": "-", "“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "…": "..."}
)


def compose_sms(title: str, link: str) -> str:
    """A signature request in one GSM-7 segment when it can be: accents are transliterated
    (UCS-2 would cut a segment to 70 characters) and a long title is shortened."""
    plain = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", title.translate(_GSM_STAND_INS))
        if not unicodedata.combining(ch)
    )
    plain = "".join(ch if sms_segments(ch).encoding == "GSM-7" else "?" for ch in plain)

    def text(t: str) -> str:
        return f"Assinatura pendente: {t}. Assine em {link}"

    for cut in range(len(plain), 0, -1):
        candidate = text(plain if cut == len(plain) else plain[:cut].rstrip() + "...")
        if sms_segments(candidate).segments == 1:
            return candidate
    return text(plain)  # the link alone fills a segment: charged per segment, quoted first


@dataclass
class Lacre:
    """The use cases, wired to a unit of work factory, a clock and the catalogue."""

    uow: UnitOfWorkFactory
    clock: Clock
    phones: PhoneBook
    catalogue: Catalogue = field(default_factory=Catalogue)
    policy: Policy = field(default_factory=Policy)

    # -- accounts and credits ----------------------------------------------------------------
    def create_account(
        self,
        name: str,
        plan_code: str = "essencial",
        timezone: str = DEFAULT_TIMEZONE,
        language: str = "pt-BR",
    ) -> Account:
        name = name.strip()
        if not name:
            raise InvalidInput("the account needs a name", field="name")
        plan = self.catalogue.plan(plan_code)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(
                f"unknown time zone {timezone!r}", field="timezone", value=timezone
            ) from exc
        now = self.clock.now()
        with self.uow() as uow:
            account = uow.accounts.add(
                name=name,
                plan_code=plan.code,
                timezone=timezone,
                language=language,
                plan_renews_at=add_months(now, 1),
                now=now,
            )
            if plan.monthly_credits:
                self._credit(
                    uow,
                    account.id,
                    Pool.CREDITS,
                    plan.monthly_credits,
                    Reason.PLAN_GRANT,
                    f"plan:{account.id}:{now:%Y-%m-%d}",
                )
            if self.catalogue.starting_notification_credits:
                self._credit(
                    uow,
                    account.id,
                    Pool.NOTIFICATION,
                    self.catalogue.starting_notification_credits,
                    Reason.PLAN_GRANT,
                    f"start-notif:{account.id}",
                )
            created = uow.accounts.get(account.id) or account
            uow.commit()
            return created

    def balances(self, account_id: int) -> Balances:
        with self.uow(write=False) as uow:
            self._account(uow, account_id)
            return uow.ledger.balances(account_id)

    def grant(
        self,
        account_id: int,
        *,
        credits: int = 0,
        notification_credits: int = 0,
        reason: str = "",
        idempotency_key: str | None = None,
    ) -> Balances:
        """An operator's adjustment; positive amounts only (it never takes credits away)."""
        if credits < 0 or notification_credits < 0:
            raise InvalidInput("grants must be positive", field="credits")
        if credits == 0 and notification_credits == 0:
            raise InvalidInput(
                "nothing to grant: give --credits or --notification-credits", field="credits"
            )
        # Without a key every grant is its own: two at the same instant must both count.
        key = idempotency_key or f"grant:{account_id}:{secrets.token_hex(8)}"
        with self.uow() as uow:
            self._account(uow, account_id)
            if credits:
                self._credit(
                    uow,
                    account_id,
                    Pool.CREDITS,
                    credits,
                    Reason.ADJUSTMENT,
                    f"{key}:credits",
                    note=reason,
                )
            if notification_credits:
                self._credit(
                    uow,
                    account_id,
                    Pool.NOTIFICATION,
                    notification_credits,
                    Reason.ADJUSTMENT,
                    f"{key}:notification",
                    note=reason,
                )
            # Read in the same transaction: after COMMIT a read would open another one (a write
            # transaction, in a writing unit of work) just for it.
            after = uow.ledger.balances(account_id)
            uow.commit()
            return after

    def purchase(self, account_id: int, pack_code: str, payment_id: str) -> bool:
        """Credit a paid notification pack once per payment id; False if already credited."""
        pack = self.catalogue.pack(pack_code)
        with self.uow() as uow:
            self._account(uow, account_id)
            done = self._credit(
                uow,
                account_id,
                Pool.NOTIFICATION,
                pack.notification_credits,
                Reason.PURCHASE,
                f"purchase:{payment_id}",
                note=pack.code,
            )
            uow.commit()
            return done

    def charge(
        self,
        account_id: int,
        pool: Pool,
        amount: int,
        reason: Reason,
        idempotency_key: str,
        *,
        actor_user_id: int,
        envelope_id: int | None = None,
    ) -> bool:
        """Spend once per key: True if charged now, False if the key was already charged."""
        with self.uow() as uow:
            actor = uow.users.get(actor_user_id)
            # Invariant 6: only a linked user of the paying account can spend its credits.
            if actor is None or actor.account_id != account_id or actor.telegram_user_id is None:
                raise NotAllowed("this user may not spend for this account", what="user")
            entry = EntryDraft(
                account_id,
                pool,
                -amount,
                reason,
                idempotency_key,
                envelope_id=envelope_id,
                actor_user_id=actor_user_id,
            )
            charged = self._debit(uow, [entry])
            uow.commit()
            return charged

    # -- linking -----------------------------------------------------------------------------
    def create_link_token(self, account_id: int, role: Role = Role.MEMBER) -> str:
        token = new_token()
        now = self.clock.now()
        with self.uow() as uow:
            self._account(uow, account_id)
            uow.link_tokens.add(
                LinkToken(hash_token(token), account_id, role, now, now + LINK_TOKEN_TTL)
            )
            uow.commit()
        return token

    def link(
        self, token: str, telegram_user_id: int, name: str, language: str | None = None
    ) -> User:
        """Tie this Telegram user to the token's account; each token works once, in time."""
        if not looks_like_token(token):
            raise LinkTokenInvalid("malformed link token", reason="unknown")
        now = self.clock.now()
        with self.uow() as uow:
            stored = uow.link_tokens.get(hash_token(token))
            if stored is None:
                raise LinkTokenInvalid("unknown link token", reason="unknown")
            if stored.used_at is not None:
                raise LinkTokenInvalid("this link was already used", reason="used")
            if not stored.usable(now):
                raise LinkTokenInvalid("this link has expired", reason="expired")
            previous = uow.users.by_telegram(telegram_user_id)
            if previous is not None:
                uow.users.set_telegram(previous.id, None)
            user = uow.users.add(
                account_id=stored.account_id,
                role=stored.role,
                name=name[:200],
                telegram_user_id=telegram_user_id,
                language=language,
                now=now,
            )
            if not uow.link_tokens.mark_used(stored.token_hash, user.id, now):
                uow.rollback()
                raise LinkTokenInvalid("this link was already used", reason="used")
            uow.commit()
            return user

    def unlink(self, telegram_user_id: int) -> bool:
        with self.uow() as uow:
            user = uow.users.by_telegram(telegram_user_id)
            if user is None:
                return False
            uow.users.set_telegram(user.id, None)
            uow.commit()
            return True

    def actor(self, telegram_user_id: int) -> User | None:
        with self.uow(write=False) as uow:
            return uow.users.by_telegram(telegram_user_id)

    # -- envelopes ---------------------------------------------------------------------------
    def envelope(self, user_id: int, envelope_id: int) -> Envelope:
        with self.uow(write=False) as uow:
            return self.visible_envelope(uow, user_id, envelope_id)[1]

    def quote_seal(self, user_id: int, envelope_id: int) -> SealQuote:
        with self.uow(write=False) as uow:
            _user, env = self.visible_envelope(uow, user_id, envelope_id)
            balance = uow.ledger.balances(env.account_id).credits
            return SealQuote(envelope_id, self.seal_lines(env), balance)

    def seal_lines(self, env: Envelope) -> tuple[QuoteLine, ...]:
        """The platform's quote when it gave one, else the configured rule (plus ICP)."""
        if env.quoted_credits is not None:
            lines = [QuoteLine(Reason.SEAL, env.quoted_credits)]
        else:
            pricing = self.catalogue.pricing
            lines = [QuoteLine(Reason.SEAL, pricing.seal_credits(len(env.documents)))]
            if env.icp and pricing.icp_credits(len(env.signers)):
                lines.append(QuoteLine(Reason.ICP, pricing.icp_credits(len(env.signers))))
        # A free seal has no ledger entry: an entry moves at least one credit.
        return tuple(line for line in lines if line.credits > 0)

    def seal(
        self, user_id: int, envelope_id: int, *, expected_total: int | None = None
    ) -> SealResult:
        """Charge the seal exactly once, move to pendente, queue the free e-mail requests."""
        now = self.clock.now()
        with self.uow() as uow:
            user, env = self.visible_envelope(uow, user_id, envelope_id)
            key = f"seal:{envelope_id}"
            lines = self.seal_lines(env)
            free_and_done = env.sealed_at is not None and not lines
            if free_and_done or uow.ledger.by_key(key) is not None:
                return SealResult(envelope_id, 0, True, uow.ledger.balances(env.account_id).credits)
            total = sum(line.credits for line in lines)
            if expected_total is not None and expected_total != total:
                raise QuoteChanged("the seal price changed", before=expected_total, now=total)
            to_notify = env.seal(now)
            entries = [
                EntryDraft(
                    env.account_id,
                    Pool.CREDITS,
                    -line.credits,
                    line.reason,
                    key if i == 0 else f"{key}:{line.reason.value}",
                    envelope_id=envelope_id,
                    actor_user_id=user.id,
                )
                for i, line in enumerate(lines)
            ]
            if entries and not self._debit(uow, entries):
                uow.rollback()
                return SealResult(envelope_id, 0, True, uow.ledger.balances(env.account_id).credits)
            uow.envelopes.save(env, now)
            ids = self._queue_emails(
                uow,
                env,
                to_notify,
                Kind.SIGNATURE_REQUEST,
                f"seal:{envelope_id}",
                requested_by=user.id,
            )
            after = uow.ledger.balances(env.account_id).credits  # before COMMIT, as in grant
            uow.commit()
            return SealResult(envelope_id, total, False, after, ids)

    def block(self, user_id: int, envelope_id: int) -> Envelope:
        return self._transition(user_id, envelope_id, "block")

    def unblock(self, user_id: int, envelope_id: int) -> Envelope:
        return self._transition(user_id, envelope_id, "unblock")

    def cancel(self, user_id: int, envelope_id: int) -> Envelope:
        return self._transition(user_id, envelope_id, "cancel")

    def delete_draft(self, user_id: int, envelope_id: int) -> Envelope:
        return self._transition(user_id, envelope_id, "delete")

    def _transition(self, user_id: int, envelope_id: int, action: str) -> Envelope:
        now = self.clock.now()
        with self.uow() as uow:
            user, env = self.visible_envelope(uow, user_id, envelope_id)
            if action == "block":
                env.block(now)
            elif action == "unblock":
                notify = env.unblock(now)
                self._queue_emails(
                    uow,
                    env,
                    notify,
                    Kind.SIGNATURE_REQUEST,
                    f"unblock:{envelope_id}:v{env.version}",
                    requested_by=user.id,
                )
            elif action == "cancel":
                env.cancel(now)
            else:
                env.delete_draft()
            uow.envelopes.save(env, now)
            uow.commit()
            return env

    def record_signature(
        self, envelope_ref: str, signer_email: str, account_id: int | None = None
    ) -> Envelope:
        """A platform event: the signer signed; completes or notifies the next in turn."""
        now = self.clock.now()
        with self.uow() as uow:
            if account_id is not None:
                found = uow.envelopes.get_by_ref(account_id, envelope_ref)
                matches = [found] if found else []
            else:
                matches = uow.envelopes.find_by_ref(envelope_ref)
            if not matches:
                raise NotFound(
                    f"no envelope with ref {envelope_ref!r}", what="envelope", ref=envelope_ref
                )
            if len(matches) > 1:
                raise InvalidInput(
                    f"ref {envelope_ref!r} exists in several accounts; name the account",
                    field="account",
                    ref=envelope_ref,
                )
            env = matches[0]
            signer = env.signer_by_email(signer_email)
            notify = env.record_signature(signer, now)
            self._queue_emails(
                uow,
                env,
                notify,
                Kind.SIGNATURE_REQUEST,
                f"turn:{env.id}:{signer.id}",
                requested_by=None,
            )
            uow.envelopes.save(env, now)
            uow.commit()
            return env

    # -- notifications -----------------------------------------------------------------------
    def sms_text(self, env: Envelope) -> str:
        return compose_sms(env.title, self.policy.signing_url_template.format(ref=env.ref))

    def channel_problem(
        self, uow: UnitOfWork, env: Envelope, signer: Signer, channel: Channel, now: datetime
    ) -> ChannelUnavailable | None:
        """Why this channel cannot be used now for this signer, or None when it can."""
        if not env.can_notify(signer, now):
            reason = (
                "signed"
                if not signer.is_pending
                else (
                    "expired"
                    if env.is_expired(now)
                    else "not_in_turn"
                    if env.status.value == "pendente"
                    else "envelope_state"
                )
            )
            return ChannelUnavailable(
                "this signer cannot be notified now", reason=reason, status=env.display_status(now)
            )
        if channel.needs_phone:
            if not signer.phone:
                return ChannelUnavailable("the signer has no phone number", reason="no_phone")
            if self.phones.region(signer.phone) not in self.policy.allowed_regions:
                return ChannelUnavailable(
                    "destination country not allowed",
                    reason="country",
                    region=self.phones.region(signer.phone),
                )
            if not self.phones.is_mobile(signer.phone):
                return ChannelUnavailable("the number is not a mobile", reason="not_mobile")
        last = uow.notifications.last_requested_at(signer.id or 0, channel)
        if last is not None and now - last < self.policy.cooldown:
            wait = int((self.policy.cooldown - (now - last)).total_seconds()) + 1
            return CooldownActive("wait before sending again", reason="cooldown", seconds=wait)
        return None

    def quote_send(
        self, user_id: int, envelope_id: int, signer_id: int, channel: Channel
    ) -> SendQuote:
        now = self.clock.now()
        with self.uow(write=False) as uow:
            _user, env = self.visible_envelope(uow, user_id, envelope_id)
            return self.send_quote_in(uow, env, signer_id, channel, now)

    def send_quote_in(
        self, uow: UnitOfWork, env: Envelope, signer_id: int, channel: Channel, now: datetime
    ) -> SendQuote:
        """Inside a unit of work: refuse what cannot be sent now, else price the send."""
        signer = env.signer(signer_id)
        problem = self.channel_problem(uow, env, signer, channel, now)
        if problem is not None:
            raise problem
        q = quote(channel, self.sms_text(env) if channel is Channel.SMS else "")
        balance = uow.ledger.balances(env.account_id).notification_credits
        assert env.id is not None
        return SendQuote(env.id, signer_id, q, self._destination(signer, channel), balance)

    def request_send(
        self,
        user_id: int,
        envelope_id: int,
        signer_id: int,
        channel: Channel,
        idempotency_key: str,
        *,
        expected_cost: int | None = None,
    ) -> SendResult:
        """Charge the channel's cost and queue the send in one transaction, once per key."""
        now = self.clock.now()
        with self.uow() as uow:
            user, env = self.visible_envelope(uow, user_id, envelope_id)
            # Scoped by account: another account's key must neither block nor reveal this send.
            key = f"send:{env.account_id}:{idempotency_key}"
            existing = uow.notifications.by_key(key)
            if existing is not None:
                if (existing.envelope_id, existing.signer_id, existing.channel) != (
                    envelope_id,
                    signer_id,
                    channel,
                ):
                    raise InvalidInput(
                        "this confirmation was for another send", field="idempotency_key"
                    )
                return SendResult(
                    existing, True, uow.ledger.balances(env.account_id).notification_credits
                )
            priced = self.send_quote_in(uow, env, signer_id, channel, now)
            q = priced.quote
            if expected_cost is not None and expected_cost != q.cost:
                raise QuoteChanged("the price changed", before=expected_cost, now=q.cost)
            if channel.is_paid:
                used = uow.notifications.paid_since(env.account_id, now - timedelta(days=1))
                if used >= self.policy.daily_paid_cap:
                    raise CapReached(
                        "daily limit of paid sends reached", cap=self.policy.daily_paid_cap
                    )
            notification = uow.notifications.add(
                NotificationDraft(
                    env.account_id,
                    envelope_id,
                    signer_id,
                    channel,
                    Kind.RESEND,
                    priced.destination,
                    q.cost,
                    q.segments,
                    q.text,
                    key,
                    user.id,
                ),
                now,
            )
            if notification is None:  # a concurrent confirmation won the key
                uow.rollback()
                won = uow.notifications.by_key(key)
                assert won is not None
                return SendResult(
                    won, True, uow.ledger.balances(env.account_id).notification_credits
                )
            if q.cost:
                entry = EntryDraft(
                    env.account_id,
                    Pool.NOTIFICATION,
                    -q.cost,
                    channel.reason,
                    f"charge:{key}",
                    envelope_id=envelope_id,
                    notification_id=notification.id,
                    actor_user_id=user.id,
                )
                if not self._debit(uow, [entry]):  # pragma: no cover - key is fresh
                    uow.rollback()
                    raise InvalidState("this send was already charged")
            after = uow.ledger.balances(env.account_id).notification_credits  # as in grant
            uow.commit()
            return SendResult(notification, False, after)

    def resend_all_email(
        self, user_id: int, envelope_id: int, idempotency_key: str
    ) -> tuple[int, ...]:
        """Free e-mail to every pending signer whose turn it is (cooldown respected)."""
        now = self.clock.now()
        with self.uow() as uow:
            user, env = self.visible_envelope(uow, user_id, envelope_id)
            prefix = f"resend-all:{env.account_id}:{idempotency_key}"
            # The same tap again (a retry, a double tap) answers with what it queued first.
            done = [n for s in env.signers if (n := uow.notifications.by_key(f"{prefix}:{s.id}"))]
            if done:
                return tuple(n.id for n in done)
            targets = [
                s
                for s in env.signers_in_turn()
                if self.channel_problem(uow, env, s, Channel.EMAIL, now) is None
            ]
            if not targets:
                raise ChannelUnavailable(
                    "nobody can be notified now", reason="nobody", status=env.display_status(now)
                )
            ids = self._queue_emails(
                uow,
                env,
                targets,
                Kind.RESEND,
                prefix,
                requested_by=user.id,
            )
            uow.commit()
            return ids

    def refund(self, notification_id: int) -> bool:
        """Give back a failed paid send's credits, at most once; False if nothing to do."""
        with self.uow() as uow:
            n = uow.notifications.get(notification_id)
            if n is None or n.cost == 0 or n.status is not DeliveryStatus.FAILED:
                return False
            charge = uow.ledger.by_key(f"charge:{n.idempotency_key}")
            if charge is None:
                return False
            entry = EntryDraft(
                n.account_id,
                Pool.NOTIFICATION,
                -charge.amount,
                Reason.REFUND,
                f"refund:{n.idempotency_key}",
                envelope_id=n.envelope_id,
                notification_id=n.id,
            )
            if not uow.ledger.append(entry, self.clock.now()):
                return False
            uow.ledger.credit(n.account_id, Pool.NOTIFICATION, -charge.amount)
            uow.commit()
            return True

    # -- import ------------------------------------------------------------------------------
    def import_envelopes(self, batch: ImportBatch) -> ImportResult:
        """Create or update by ref, all in one transaction; a refusal writes nothing."""
        now = self.clock.now()
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        with self.uow() as uow:
            self._account(uow, batch.account_id)
            for item in batch.envelopes:
                if item.created_by is not None:
                    creator = uow.users.get(item.created_by)
                    if creator is None or creator.account_id != batch.account_id:
                        raise InvalidInput(
                            f"envelope {item.ref}: created_by is not a user of this account",
                            ref=item.ref,
                            field="created_by",
                        )
                existing = uow.envelopes.get_by_ref(batch.account_id, item.ref)
                if existing is None:
                    uow.envelopes.add(item.to_envelope(batch.account_id), now)
                    created.append(item.ref)
                    continue
                changed = item.apply_to(existing)
                if changed:
                    uow.envelopes.replace(existing, now)
                    updated.append(item.ref)
                else:
                    unchanged.append(item.ref)
            uow.commit()
        return ImportResult(tuple(created), tuple(updated), tuple(unchanged))

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _account(uow: UnitOfWork, account_id: int) -> Account:
        account = uow.accounts.get(account_id)
        if account is None:
            raise NotFound(f"no account {account_id}", what="account", id=account_id)
        return account

    @staticmethod
    def visible_envelope(uow: UnitOfWork, user_id: int, envelope_id: int) -> tuple[User, Envelope]:
        """Invariant 7: someone else's envelope is simply not found."""
        user = uow.users.get(user_id)
        if user is None or user.telegram_user_id is None:
            raise NotAllowed("this user is not linked", what="user")
        env = uow.envelopes.get(envelope_id)
        if env is None or not user.can_see(env.account_id, env.created_by):
            raise NotFound("envelope not found", what="envelope", id=envelope_id)
        return user, env

    def _credit(
        self,
        uow: UnitOfWork,
        account_id: int,
        pool: Pool,
        amount: int,
        reason: Reason,
        key: str,
        note: str = "",
    ) -> bool:
        if not uow.ledger.append(
            EntryDraft(account_id, pool, amount, reason, key, note=note), self.clock.now()
        ):
            return False
        uow.ledger.credit(account_id, pool, amount)
        return True

    def _debit(self, uow: UnitOfWork, entries: Sequence[EntryDraft]) -> bool:
        """Append the entries and take their total from one pool; False if a key existed.

        Raises InsufficientCredits (after the caller's rollback) when the pool is short.
        """
        pool, account_id = entries[0].pool, entries[0].account_id
        total = -sum(e.amount for e in entries)
        now = self.clock.now()
        for entry in entries:
            if entry.pool is not pool or entry.amount >= 0:
                raise ValueError("a debit takes from one pool")
            if not uow.ledger.append(entry, now):
                uow.rollback()
                return False
        if not uow.ledger.debit(account_id, pool, total):
            have = uow.ledger.balances(account_id).of(pool)
            uow.rollback()
            raise InsufficientCredits(
                "not enough credits",
                pool=pool.value,
                needed=total,
                balance=have,
                missing=total - have,
            )
        return True

    def _destination(self, signer: Signer, channel: Channel) -> str:
        if channel is Channel.EMAIL:
            return signer.email
        assert signer.phone is not None
        return f"whatsapp:{signer.phone}" if channel is Channel.WHATSAPP else signer.phone

    def _queue_emails(
        self,
        uow: UnitOfWork,
        env: Envelope,
        signers: Sequence[Signer],
        kind: Kind,
        key_prefix: str,
        requested_by: int | None,
    ) -> tuple[int, ...]:
        now = self.clock.now()
        ids: list[int] = []
        for signer in signers:
            assert env.id is not None and signer.id is not None
            row = uow.notifications.add(
                NotificationDraft(
                    env.account_id,
                    env.id,
                    signer.id,
                    Channel.EMAIL,
                    kind,
                    signer.email,
                    0,
                    1,
                    "",
                    f"{key_prefix}:{signer.id}",
                    requested_by,
                ),
                now,
            )
            if row is not None:
                ids.append(row.id)
        return tuple(ids)
