"""Inline keyboards of the bot: every button carries callback data from `callbacks`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, TelegramObject

from bot.i18n import Raw, current_language, t
from bot.telegram import callbacks as cb
from bot.telegram.render import amount, money
from core.browse import (
    STATUS_TAB,
    CardAction,
    EnvelopeCard,
    EnvelopePage,
    HistoryPage,
    PlansView,
    ResendChoice,
    Tab,
)
from core.envelopes import Envelope
from core.ledger import Pool

TAB_ORDER = (
    Tab.PENDENTES,
    Tab.VENCENDO,
    Tab.RASCUNHOS,
    Tab.BLOQUEADOS,
    Tab.CONCLUIDOS,
    Tab.CANCELADOS,
)


def label(key: str, /, **values: object) -> str:
    """A button label: plain text, so values are not HTML-escaped."""
    return label_in(current_language.get(), key, **values)


def label_in(language: str, key: str, /, **values: object) -> str:
    """`label` in a given language, for keyboards cached per language."""
    return _label(language, key, tuple((n, str(v)) for n, v in values.items()))


@lru_cache(maxsize=16384)
def _label(language: str, key: str, values: tuple[tuple[str, str], ...]) -> str:
    # Tabs with counts, pagers and action labels repeat on every view of every user.
    return t(key, language, **{name: Raw(value) for name, value in values})


class _Button(InlineKeyboardButton):
    """A callback button that serialises once: the same tabs, pagers and cards come back on
    every view, and python-telegram-bot's generic `to_dict` walks every slot of every button."""

    __slots__ = ("_wire",)

    def __init__(self, text: str, callback_data: str) -> None:
        super().__init__(text, callback_data=callback_data)
        # A frozen TelegramObject still takes attributes whose name starts with "_".
        self._wire = {"text": text, "callback_data": callback_data}

    def to_dict(self, recursive: bool = True) -> dict[str, Any]:
        return dict(self._wire)


class _Keyboard(InlineKeyboardMarkup):
    """An inline keyboard whose wire form is built from its buttons' own (cached) forms."""

    __slots__ = ()

    def __init__(self, rows: tuple[tuple[InlineKeyboardButton, ...], ...]) -> None:
        # The parent's body without its type check, which costs an ABC isinstance per row and
        # per button: `markup` builds these tuples of buttons itself. A unit test holds this
        # to the parent's attributes, equality and hash.
        TelegramObject.__init__(self)
        self.inline_keyboard = rows
        self._id_attrs = (rows,)
        self._freeze()

    def to_dict(self, recursive: bool = True) -> dict[str, Any]:
        return {"inline_keyboard": [[b.to_dict() for b in row] for row in self.inline_keyboard]}


@lru_cache(maxsize=16384)
def button(text: str, target: cb.Button) -> InlineKeyboardButton:
    """Buttons are immutable, so one object serves every keyboard that shows the same one."""
    return _Button(text, cb.format_data(target))


def markup(rows: Sequence[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup | None:
    """None when there is no button: Telegram refuses an empty inline keyboard."""
    kept = tuple(tuple(row) for row in rows if row)
    return _Keyboard(kept) if kept else None


def _pager(
    language: str, page: int, pages: int, to: Callable[[int], cb.Button]
) -> list[InlineKeyboardButton]:
    row: list[InlineKeyboardButton] = []
    if page > 0:
        row.append(button(label_in(language, "kb.previous"), to(page - 1)))
    if page + 1 < pages:
        row.append(button(label_in(language, "kb.next"), to(page + 1)))
    return row


def envelope_list(view: EnvelopePage) -> InlineKeyboardMarkup | None:
    """One button per envelope, the tabs with counts, paging and search."""
    language = current_language.get()
    rows: list[Sequence[InlineKeyboardButton]] = [
        (_item(language, env.id, env.title, env.ref),) for env in view.items
    ]
    # Counts as text: the labels show them so, and 1 and True must not share an entry.
    counts = tuple(str(view.counts.get(tab, 0)) for tab in TAB_ORDER)
    rows += _list_tail(language, view.tab, view.page, view.pages, counts)
    return markup(rows)


@lru_cache(maxsize=4096)
def _item(language: str, envelope_id: int, title: str, ref: str) -> InlineKeyboardButton:
    # One lookup instead of a label, a callback target and a button lookup per envelope.
    text = label_in(language, "kb.envelope_item", title=_short(title, 40), ref=ref)
    return button(text, cb.OpenEnvelope(envelope_id))


@lru_cache(maxsize=1024)
def _list_tail(
    language: str, active: Tab, page: int, pages: int, counts: tuple[str, ...]
) -> tuple[Sequence[InlineKeyboardButton], ...]:
    """Pager, tabs with counts and search: the same few rows under every page of a tab."""
    tabs = [
        button(
            label_in(
                language,
                "kb.tab_active" if tab is active else "kb.tab",
                name=t(f"tab.{tab.value}", language),
                count=count,
            ),
            cb.ListPage(tab, 0),
        )
        for tab, count in zip(TAB_ORDER, counts, strict=True)
    ]
    pager = _pager(language, page, pages, lambda p: cb.ListPage(active, p))
    search = button(label_in(language, "kb.search"), cb.StartSearch())
    return (tuple(pager), tuple(tabs[0:2]), tuple(tabs[2:4]), tuple(tabs[4:6]), (search,))


def envelope_card(card: EnvelopeCard) -> InlineKeyboardMarkup | None:
    env = card.envelope
    assert env.id is not None
    cost = amount(card.seal_credits, Pool.CREDITS) if CardAction.SEAL in card.actions else ""
    back_tab = STATUS_TAB.get(env.status, Tab.PENDENTES)
    return _card(current_language.get(), env.id, card.actions, cost, back_tab)


@lru_cache(maxsize=2048)
def _card(
    language: str,
    envelope_id: int,
    actions: tuple[CardAction, ...],
    seal_cost: str,
    back_tab: Tab,
) -> InlineKeyboardMarkup | None:
    """A card's buttons depend on nothing else; refreshes and "back" show the same ones."""

    def text(action: CardAction) -> str:
        match action:
            case CardAction.SEAL:
                return label_in(language, "kb.seal", credits=seal_cost)
            case CardAction.RESEND:
                return label_in(language, "kb.resend")
            case CardAction.BLOCK:
                return label_in(language, "kb.block")
            case CardAction.UNBLOCK:
                return label_in(language, "kb.unblock")
            case CardAction.CANCEL:
                return label_in(language, "kb.cancel_envelope")

    buttons = [button(text(a), cb.EnvelopeAction(envelope_id, a)) for a in actions]
    return markup(
        [
            buttons[:2],
            buttons[2:],
            [
                button(label_in(language, "kb.refresh"), cb.OpenEnvelope(envelope_id)),
                button(label_in(language, "kb.back"), cb.ListPage(back_tab, 0)),
            ],
        ]
    )


def confirm(nonce: str, label_key: str = "kb.confirm") -> InlineKeyboardMarkup | None:
    return markup(
        [
            [
                button(label(label_key), cb.Confirm(nonce)),
                button(label("kb.decline"), cb.Decline(nonce)),
            ]
        ]
    )


def back_to(envelope_id: int, *, plans: bool = False) -> InlineKeyboardMarkup | None:
    rows = [[button(label("kb.open_envelope"), cb.OpenEnvelope(envelope_id))]]
    if plans:
        rows.insert(0, [button(label("kb.plans"), cb.OpenPlans())])
    return markup(rows)


def resend_menu(env: Envelope) -> InlineKeyboardMarkup | None:
    assert env.id is not None
    in_turn = {s.id for s in env.signers_in_turn()}
    rows = [[button(label("kb.resend_all"), cb.ResendAll(env.id))]]
    for signer in env.pending_signers():
        if signer.id in in_turn and signer.id is not None:
            rows.append([button(_short(signer.name, 50), cb.PickSigner(env.id, signer.id))])
    rows.append([button(label("kb.back"), cb.OpenEnvelope(env.id))])
    return markup(rows)


def channel_menu(choice: ResendChoice) -> InlineKeyboardMarkup | None:
    env = choice.envelope
    assert env.id is not None
    rows = []
    for option in choice.options:
        if option.problem is not None:
            continue
        text = label(
            f"kb.channel.{option.channel.value}",
            cost=amount(option.cost, Pool.NOTIFICATION),
        )
        rows.append([button(text, cb.ResendOne(env.id, choice.signer_id, option.channel))])
    rows.append([button(label("kb.back"), cb.EnvelopeAction(env.id, CardAction.RESEND))])
    return markup(rows)


def plans(view: PlansView, url_template: str) -> InlineKeyboardMarkup | None:
    """URL buttons to the payment page: notification packs ("Adquirir") and other plans."""

    def url(item: str) -> str:
        return url_template.format(account_id=quote(str(view.account.id)), item=quote(item))

    rows: list[list[InlineKeyboardButton]] = [
        [
            InlineKeyboardButton(
                label(
                    "kb.buy_pack",
                    credits=amount(pack.notification_credits, Pool.NOTIFICATION),
                    price=money(pack.price_cents),
                ),
                url=url(pack.code),
            )
        ]
        for pack in view.packs
    ]
    rows.extend(
        [InlineKeyboardButton(label("kb.change_plan", plan=plan.name), url=url(plan.code))]
        for plan in view.others
    )
    rows.append([button(label("kb.envelopes"), cb.ListPage(Tab.PENDENTES, 0))])
    return markup(rows)


def history(view: HistoryPage) -> InlineKeyboardMarkup | None:
    return markup([_pager(current_language.get(), view.page, view.pages, cb.HistoryPage)])


def languages() -> InlineKeyboardMarkup | None:
    return markup(
        [[button(label(f"language.{code}"), cb.ChooseLanguage(code)) for code in cb.LANGUAGE_CODES]]
    )


def planos_only() -> InlineKeyboardMarkup | None:
    return markup([[button(label("kb.plans"), cb.OpenPlans())]])


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
