"""Inline keyboards of the bot: every button carries callback data from `callbacks`.

Keyboards are built in the Bot API's wire form (plain dicts), not as python-telegram-bot
objects: `handlers.call` hands them to `Bot.do_api_request`, which JSON-encodes a dict as it is,
while an object is first walked slot by slot by `to_dict` on every send. Buttons, rows and whole
keyboards are cached and shared, so nothing here is ever mutated once built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any
from urllib.parse import quote

from bot.i18n import Raw, current_language, t
from bot.telegram import callbacks as cb
from bot.telegram.render import amount, money, number
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


InlineButton = Mapping[str, str]
"""An inline button as the Bot API reads it: `text` and `callback_data`, or `text` and `url`."""

Markup = Mapping[str, Any]
"""A reply markup as the Bot API reads it: `{"inline_keyboard": [[button, ...], ...]}` or a
force reply. A `dict` at run time (JSON encodes only dicts), read-only for the type checker."""


@lru_cache(maxsize=16384)
def button(text: str, target: cb.Button) -> InlineButton:
    """The same tabs, pagers and cards come back on every view: one dict serves them all."""
    return {"text": text, "callback_data": cb.format_data(target)}


def url_button(text: str, url: str) -> InlineButton:
    return {"text": text, "url": url}


def markup(rows: Sequence[Sequence[InlineButton]]) -> Markup | None:
    """None when there is no button: Telegram refuses an empty inline keyboard."""
    # Lists, as JSON reads back: a keyboard equals python-telegram-bot's `to_dict` of it.
    kept = [list(row) for row in rows if row]
    return {"inline_keyboard": kept} if kept else None


@cache
def force_reply() -> Markup:
    """Opens the reply field on the prompt, so the next text is the answer (search)."""
    return {"force_reply": True, "selective": True}


def _pager(
    language: str, page: int, pages: int, to: Callable[[int], cb.Button]
) -> list[InlineButton]:
    row: list[InlineButton] = []
    if page > 0:
        row.append(button(label_in(language, "kb.previous"), to(page - 1)))
    if page + 1 < pages:
        row.append(button(label_in(language, "kb.next"), to(page + 1)))
    return row


def envelope_list(view: EnvelopePage) -> Markup | None:
    """One button per envelope, the tabs with counts, paging and search."""
    language = current_language.get()
    rows: list[Sequence[InlineButton]] = [
        (_item(language, env.id, env.title, env.ref),) for env in view.items
    ]
    # Counts as the labels show them, in the user's locale ("1.234" in pt-BR, as in the list's
    # header); as text, 1 and True cannot share an entry of the cache.
    counts = tuple(number(view.counts.get(tab, 0)) for tab in TAB_ORDER)
    rows += _list_tail(language, view.tab, view.page, view.pages, counts)
    return markup(rows)


@lru_cache(maxsize=4096)
def _item(language: str, envelope_id: int, title: str, ref: str) -> InlineButton:
    # One lookup instead of a label, a callback target and a button lookup per envelope.
    text = label_in(language, "kb.envelope_item", title=_short(title, 40), ref=ref)
    return button(text, cb.OpenEnvelope(envelope_id))


@lru_cache(maxsize=1024)
def _list_tail(
    language: str, active: Tab, page: int, pages: int, counts: tuple[str, ...]
) -> tuple[Sequence[InlineButton], ...]:
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


def envelope_card(card: EnvelopeCard) -> Markup | None:
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
) -> Markup | None:
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


def confirm(nonce: str, label_key: str = "kb.confirm") -> Markup | None:
    return markup(
        [
            [
                button(label(label_key), cb.Confirm(nonce)),
                button(label("kb.decline"), cb.Decline(nonce)),
            ]
        ]
    )


def back_to(envelope_id: int, *, plans: bool = False) -> Markup | None:
    rows = [[button(label("kb.open_envelope"), cb.OpenEnvelope(envelope_id))]]
    if plans:
        rows.insert(0, [button(label("kb.plans"), cb.OpenPlans())])
    return markup(rows)


def resend_menu(env: Envelope) -> Markup | None:
    assert env.id is not None
    in_turn = {s.id for s in env.signers_in_turn()}
    rows = [[button(label("kb.resend_all"), cb.ResendAll(env.id))]]
    for signer in env.pending_signers():
        if signer.id in in_turn and signer.id is not None:
            rows.append([button(_short(signer.name, 50), cb.PickSigner(env.id, signer.id))])
    rows.append([button(label("kb.back"), cb.OpenEnvelope(env.id))])
    return markup(rows)


def channel_menu(choice: ResendChoice) -> Markup | None:
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


def plans(view: PlansView, url_template: str) -> Markup | None:
    """URL buttons to the payment page: notification packs ("Adquirir") and other plans."""

    def url(item: str) -> str:
        return url_template.format(account_id=quote(str(view.account.id)), item=quote(item))

    rows: list[list[InlineButton]] = [
        [
            url_button(
                label(
                    "kb.buy_pack",
                    credits=amount(pack.notification_credits, Pool.NOTIFICATION),
                    price=money(pack.price_cents),
                ),
                url(pack.code),
            )
        ]
        for pack in view.packs
    ]
    rows.extend(
        [url_button(label("kb.change_plan", plan=plan.name), url(plan.code))]
        for plan in view.others
    )
    rows.append([button(label("kb.envelopes"), cb.ListPage(Tab.PENDENTES, 0))])
    return markup(rows)


def history(view: HistoryPage) -> Markup | None:
    return markup([_pager(current_language.get(), view.page, view.pages, cb.HistoryPage)])


def languages() -> Markup | None:
    return markup(
        [[button(label(f"language.{code}"), cb.ChooseLanguage(code)) for code in cb.LANGUAGE_CODES]]
    )


def planos_only() -> Markup | None:
    return markup([[button(label("kb.plans"), cb.OpenPlans())]])


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
