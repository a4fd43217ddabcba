"""Read-side use cases of the bot: envelope tabs and search, the card, balances, plans, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from core.accounts import Account, User
from core.clock import Clock
from core.envelopes import Envelope, EnvelopeStatus
from core.errors import InvalidInput, NotAllowed, NotFound
from core.ledger import Balances, LedgerEntry
from core.notifications import Channel, DeliveryStatus, quote
from core.plans import Catalogue, NotificationPack, Plan
from core.ports import EnvelopeQuery, UnitOfWork
from core.services import Lacre

PAGE_SIZE = 8
HISTORY_PAGE_SIZE = 10
DUE_SOON = timedelta(days=3)
MAX_SEARCH = 60  # characters; a search term is stored per Telegram user


class Tab(StrEnum):
    """Envelope list tabs; the value is what callback data carries (`ls:<tab>:<page>`)."""

    PENDENTES = "pen"
    VENCENDO = "ven"
    RASCUNHOS = "ras"
    BLOQUEADOS = "blo"
    CONCLUIDOS = "con"
    CANCELADOS = "can"
    BUSCA = "q"


TAB_STATUS: dict[Tab, EnvelopeStatus] = {
    Tab.PENDENTES: EnvelopeStatus.PENDENTE,
    Tab.RASCUNHOS: EnvelopeStatus.RASCUNHO,
    Tab.BLOQUEADOS: EnvelopeStatus.BLOQUEADO,
    Tab.CONCLUIDOS: EnvelopeStatus.CONCLUIDO,
    Tab.CANCELADOS: EnvelopeStatus.CANCELADO,
}
STATUS_TAB = {status: tab for tab, status in TAB_STATUS.items()}
_VISIBLE_STATUSES = tuple(s for s in EnvelopeStatus if s is not EnvelopeStatus.EXCLUIDO)


class CardAction(StrEnum):
    SEAL = "seal"
    BLOCK = "block"
    UNBLOCK = "unblock"
    CANCEL = "cancel"
    RESEND = "resend"


def allowed_actions(env: Envelope, now: datetime) -> tuple[CardAction, ...]:
    """What the card offers in the envelope's current state (each tap re-checks anyway)."""
    if env.status is EnvelopeStatus.RASCUNHO:
        return (CardAction.SEAL,)
    if env.status is EnvelopeStatus.BLOQUEADO:
        return (CardAction.UNBLOCK,)
    if env.status is EnvelopeStatus.PENDENTE:
        if env.is_expired(now):
            return (CardAction.CANCEL,)
        actions = [CardAction.RESEND]
        if not env.anyone_signed():
            actions.append(CardAction.BLOCK)
        actions.append(CardAction.CANCEL)
        return tuple(actions)
    return ()


# -- per-Telegram-user chat state ------------------------------------------------------------
@dataclass(frozen=True)
class ChatState:
    """What the bot keeps per Telegram user: chosen language, blocked mark, last search."""

    telegram_user_id: int
    language: str | None = None
    blocked_at: datetime | None = None
    search: str = ""


class ChatRepository(Protocol):
    def get(self, telegram_user_id: int) -> ChatState | None: ...
    def set_language(self, telegram_user_id: int, language: str, now: datetime) -> None: ...
    def set_search(self, telegram_user_id: int, term: str, now: datetime) -> None: ...
    def mark_blocked(self, telegram_user_id: int, now: datetime) -> bool:
        """True only when this call set the mark (it was not blocked before)."""
        ...

    def clear_blocked(self, telegram_user_id: int, now: datetime) -> bool: ...


@dataclass(frozen=True)
class EnvelopeSummary:
    """What a list line needs: no documents, no signers."""

    id: int
    ref: str
    title: str
    status: EnvelopeStatus
    expires_at: datetime | None

    def is_expired(self, now: datetime) -> bool:
        return (
            self.status is EnvelopeStatus.PENDENTE
            and self.expires_at is not None
            and self.expires_at <= now
        )

    def display_status(self, now: datetime) -> str:
        return "expirado" if self.is_expired(now) else self.status.value


class ListingRepository(Protocol):
    """The bot's read queries: one statement each, on the same indexes as EnvelopeQuery."""

    def summaries(self, q: EnvelopeQuery) -> list[EnvelopeSummary]: ...
    def user_account(self, user_id: int) -> tuple[User, Account] | None: ...
    def viewer(
        self, telegram_user_id: int
    ) -> tuple[User | None, Account | None, ChatState | None]: ...
    def about(
        self, envelope_id: int, signer_id: int | None
    ) -> tuple[EnvelopeSummary, str] | None: ...
    def envelope(self, envelope_id: int) -> Envelope | None: ...
    def notices(self, envelope_id: int) -> dict[int, SignerNotice]: ...


class ChatsUnitOfWork(UnitOfWork, Protocol):
    @property
    def chats(self) -> ChatRepository: ...
    @property
    def listings(self) -> ListingRepository: ...


class ChatsUnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> ChatsUnitOfWork: ...


class CountCache(Protocol):
    """Tab counts kept briefly between page views; they cost a scan of the account's index."""

    def get(self, key: tuple[int, int | None]) -> dict[Tab, int] | None: ...
    def put(self, key: tuple[int, int | None], counts: dict[Tab, int]) -> None: ...
    def forget(self, account_id: int) -> None: ...


class NoCountCache:
    """Counts computed on every view."""

    def get(self, key: tuple[int, int | None]) -> dict[Tab, int] | None:
        return None

    def put(self, key: tuple[int, int | None], counts: dict[Tab, int]) -> None:
        return None

    def forget(self, account_id: int) -> None:
        return None


@dataclass(frozen=True)
class Linked:
    """A linked user and their account, read at the start of this update."""

    user: User
    account: Account

    @property
    def id(self) -> int:
        return self.user.id


@dataclass(frozen=True)
class Viewer:
    """Who sent an update: the linked user and account (or None) and their chat state."""

    telegram_user_id: int
    user: User | None
    chat: ChatState | None
    account: Account | None = None

    @property
    def linked(self) -> Linked | None:
        if self.user is None or self.account is None or self.user.telegram_user_id is None:
            return None
        return Linked(self.user, self.account)

    def language(self) -> str | None:
        """Chosen with /idioma, else stored on the user, else None (use Telegram's)."""
        if self.chat is not None and self.chat.language:
            return self.chat.language
        if self.user is not None and self.user.language:
            return self.user.language
        return None


# -- views -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvelopePage:
    tab: Tab
    page: int
    pages: int
    total: int
    items: tuple[EnvelopeSummary, ...]
    counts: dict[Tab, int]
    search: str
    timezone: str
    now: datetime


@dataclass(frozen=True)
class SignerNotice:
    """The latest notification to one signer, as the card shows it."""

    channel: Channel
    status: DeliveryStatus
    refunded: bool


@dataclass(frozen=True)
class EnvelopeCard:
    envelope: Envelope
    timezone: str
    seal_credits: int
    actions: tuple[CardAction, ...]
    notices: dict[int, SignerNotice]
    now: datetime


@dataclass(frozen=True)
class ChannelOption:
    channel: Channel
    cost: int
    problem: str | None  # reason code of ChannelUnavailable, None when usable
    problem_data: dict[str, object]


@dataclass(frozen=True)
class ResendChoice:
    envelope: Envelope
    signer_id: int
    signer_name: str
    options: tuple[ChannelOption, ...]
    notification_balance: int


@dataclass(frozen=True)
class BalanceView:
    account: Account
    balances: Balances
    plan: Plan


@dataclass(frozen=True)
class PlansView:
    account: Account
    plan: Plan
    others: tuple[Plan, ...]
    packs: tuple[NotificationPack, ...]
    balances: Balances


@dataclass(frozen=True)
class HistoryLine:
    entry: LedgerEntry
    envelope_title: str | None  # None when there is none or the user may not see it


@dataclass(frozen=True)
class HistoryPage:
    page: int
    pages: int
    total: int
    lines: tuple[HistoryLine, ...]
    timezone: str


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


@dataclass
class Browse:
    """The bot's read side plus the per-Telegram-user chat state."""

    uow: ChatsUnitOfWorkFactory
    lacre: Lacre
    clock: Clock
    catalogue: Catalogue
    counts: CountCache = field(default_factory=NoCountCache)

    # -- who is asking -------------------------------------------------------------------------
    def viewer(self, telegram_user_id: int) -> Viewer:
        with self.uow(write=False) as uow:
            user, account, chat = uow.listings.viewer(telegram_user_id)
            return Viewer(telegram_user_id, user, chat, account)

    def set_language(self, telegram_user_id: int, language: str) -> None:
        """/idioma: kept per Telegram user, and on the linked user for messages sent later."""
        now = self.clock.now()
        with self.uow() as uow:
            uow.chats.set_language(telegram_user_id, language, now)
            user = uow.users.by_telegram(telegram_user_id)
            if user is not None:
                uow.users.set_language(user.id, language)
            uow.commit()

    def mark_blocked(self, telegram_user_id: int) -> bool:
        """The user blocked the bot: nothing more is sent to them until they write again."""
        with self.uow() as uow:
            changed = uow.chats.mark_blocked(telegram_user_id, self.clock.now())
            uow.commit()
            return changed

    def clear_blocked(self, telegram_user_id: int) -> bool:
        with self.uow() as uow:
            changed = uow.chats.clear_blocked(telegram_user_id, self.clock.now())
            uow.commit()
            return changed

    def is_blocked(self, telegram_user_id: int) -> bool:
        with self.uow(write=False) as uow:
            chat = uow.chats.get(telegram_user_id)
            return chat is not None and chat.blocked_at is not None

    # -- envelope lists --------------------------------------------------------------------------
    def listing(
        self, who: int | Linked, tab: Tab, page: int = 0, search: str | None = None
    ) -> EnvelopePage:
        """One page of a tab; `search` (or the saved term on the search tab) filters by
        title, ref or signer name. Counts come from one grouped query on the indexes."""
        now = self.clock.now()
        if search is not None:
            search = " ".join(search.split())[:MAX_SEARCH]
            if not search:
                raise InvalidInput("empty search", field="search")
            tab = Tab.BUSCA
        with self.uow(write=search is not None) as uow:
            user, account = self._user_account(uow, who)
            if search is not None and user.telegram_user_id is not None:
                uow.chats.set_search(user.telegram_user_id, search, now)
                uow.commit()
            term = search
            if tab is Tab.BUSCA and term is None:
                chat = uow.chats.get(user.telegram_user_id or 0)
                term = chat.search if chat is not None else ""
            created_by = None if user.is_admin else user.id
            soon = EnvelopeQuery(
                account.id,
                created_by,
                statuses=(EnvelopeStatus.PENDENTE,),
                expires_after=now,
                expires_before=now + DUE_SOON,
                order_by_deadline=True,
            )
            cached = self.counts.get((account.id, created_by))
            if cached is None:
                by_status = uow.envelopes.count_by_status(account.id, created_by)
                counts = {t: by_status.get(s.value, 0) for t, s in TAB_STATUS.items()}
                counts[Tab.VENCENDO] = uow.envelopes.count(soon)
                self.counts.put((account.id, created_by), dict(counts))
            else:
                counts = dict(cached)
            if tab is Tab.VENCENDO:
                base = soon
            elif tab is Tab.BUSCA:
                base = EnvelopeQuery(
                    account.id, created_by, statuses=_VISIBLE_STATUSES, search=term or ""
                )
            else:
                # Deadline order walks the (account, status, expires_at) index: no sort.
                base = EnvelopeQuery(
                    account.id, created_by, statuses=(TAB_STATUS[tab],), order_by_deadline=True
                )
            if tab is Tab.BUSCA:
                total = uow.envelopes.count(base) if term else 0
                counts[Tab.BUSCA] = total
            else:
                total = counts[tab]
            pages = _pages(total, PAGE_SIZE)
            page = min(max(page, 0), pages - 1)
            items: list[EnvelopeSummary] = []
            if total and (tab is not Tab.BUSCA or term):
                items = uow.listings.summaries(
                    EnvelopeQuery(
                        base.account_id,
                        base.created_by,
                        base.statuses,
                        base.search,
                        base.expires_before,
                        base.expires_after,
                        base.order_by_deadline,
                        limit=PAGE_SIZE,
                        offset=page * PAGE_SIZE,
                    )
                )
            return EnvelopePage(
                tab, page, pages, total, tuple(items), counts, term or "", account.timezone, now
            )

    # -- the envelope card -----------------------------------------------------------------------
    def forget_counts(self, account_id: int) -> None:
        """An envelope of the account changed status: recount on the next view."""
        self.counts.forget(account_id)

    def card(self, who: int | Linked, envelope_id: int) -> EnvelopeCard:
        now = self.clock.now()
        with self.uow(write=False) as uow:
            _user, account, env = self._visible(uow, who, envelope_id)
            notices = uow.listings.notices(envelope_id)
            return EnvelopeCard(
                env,
                account.timezone,
                sum(line.credits for line in self.lacre.seal_lines(env)),
                allowed_actions(env, now),
                notices,
                now,
            )

    def about(self, envelope_id: int, signer_id: int | None = None) -> tuple[EnvelopeSummary, str]:
        """Title, ref and a signer's name for a receipt, after a use case let this user act."""
        with self.uow(write=False) as uow:
            found = uow.listings.about(envelope_id, signer_id)
            if found is None:
                raise NotFound("envelope not found", what="envelope", id=envelope_id)
            return found

    def resend_choice(self, who: int | Linked, envelope_id: int, signer_id: int) -> ResendChoice:
        """The channels for one signer, each with its cost or the reason it cannot be used."""
        now = self.clock.now()
        with self.uow(write=False) as uow:
            _user, _account, env = self._visible(uow, who, envelope_id)
            signer = env.signer(signer_id)
            options = []
            for channel in Channel:
                problem = self.lacre.channel_problem(uow, env, signer, channel, now)
                cost = quote(
                    channel, self.lacre.sms_text(env) if channel is Channel.SMS else ""
                ).cost
                options.append(
                    ChannelOption(
                        channel,
                        cost,
                        None if problem is None else str(problem.data.get("reason", problem.code)),
                        {} if problem is None else dict(problem.data),
                    )
                )
            balance = uow.ledger.balances(env.account_id).notification_credits
            return ResendChoice(env, signer_id, signer.name, tuple(options), balance)

    # -- balances, plans, history ------------------------------------------------------------------
    def balance(self, who: int | Linked) -> BalanceView:
        with self.uow(write=False) as uow:
            _user, account = self._user_account(uow, who)
            return BalanceView(
                account, uow.ledger.balances(account.id), self._plan(account.plan_code)
            )

    def plans(self, who: int | Linked) -> PlansView:
        with self.uow(write=False) as uow:
            _user, account = self._user_account(uow, who)
            plan = self._plan(account.plan_code)
            others = tuple(p for p in self.catalogue.plans if p.code != plan.code)
            return PlansView(
                account, plan, others, self.catalogue.packs, uow.ledger.balances(account.id)
            )

    def history(self, who: int | Linked, page: int = 0) -> HistoryPage:
        """Ledger entries, newest first; an envelope is named only if the user may see it."""
        with self.uow(write=False) as uow:
            user, account = self._user_account(uow, who)
            total = uow.ledger.count(account.id)
            pages = _pages(total, HISTORY_PAGE_SIZE)
            page = min(max(page, 0), pages - 1)
            entries = uow.ledger.history(account.id, HISTORY_PAGE_SIZE, page * HISTORY_PAGE_SIZE)
            titles: dict[int, str | None] = {}
            for entry in entries:
                if entry.envelope_id is None or entry.envelope_id in titles:
                    continue
                env = uow.envelopes.get(entry.envelope_id)
                visible = env is not None and user.can_see(env.account_id, env.created_by)
                titles[entry.envelope_id] = f"{env.ref} · {env.title}" if env and visible else None
            lines = tuple(
                HistoryLine(e, titles.get(e.envelope_id) if e.envelope_id else None)
                for e in entries
            )
            return HistoryPage(page, pages, total, lines, account.timezone)

    # -- helpers -----------------------------------------------------------------------------------
    def _plan(self, code: str) -> Plan:
        try:
            return self.catalogue.plan(code)
        except InvalidInput:
            # An account on a plan the configuration no longer lists still gets a view.
            return Plan(code, code, None, 0, cumulative=True, company=True)

    @classmethod
    def _visible(
        cls, uow: ChatsUnitOfWork, who: int | Linked, envelope_id: int
    ) -> tuple[User, Account, Envelope]:
        """Invariant 7, as in Lacre.visible_envelope: someone else's is simply not found."""
        user, account = cls._user_account(uow, who)
        env = uow.listings.envelope(envelope_id)
        if env is None or not user.can_see(env.account_id, env.created_by):
            raise NotFound("envelope not found", what="envelope", id=envelope_id)
        return user, account, env

    @staticmethod
    def _user_account(uow: ChatsUnitOfWork, who: int | Linked) -> tuple[User, Account]:
        """`who` read at the start of this update, or looked up now by user id."""
        if isinstance(who, Linked):
            return who.user, who.account
        found = uow.listings.user_account(who)
        if found is None or found[0].telegram_user_id is None:
            raise NotAllowed("this user is not linked", what="user")
        return found
