"""Keyboards: the labels, callback data and layout users see, whatever was cached before,
in the wire form python-telegram-bot would send for the same buttons."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.request._requestparameter import RequestParameter

from bot.i18n import LANGUAGES, current_language
from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from core.accounts import Account
from core.browse import (
    CardAction,
    ChannelOption,
    EnvelopeCard,
    EnvelopePage,
    EnvelopeSummary,
    HistoryPage,
    PlansView,
    ResendChoice,
    Tab,
)
from core.envelopes import Envelope, EnvelopeStatus, Signer
from core.ledger import Balances
from core.notifications import Channel
from core.plans import NotificationPack, Plan

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
COUNTS = {Tab.PENDENTES: 12, Tab.VENCENDO: 1, Tab.RASCUNHOS: 1234, Tab.BLOQUEADOS: 0}


def page(tab: Tab = Tab.PENDENTES, number: int = 1, pages: int = 3) -> EnvelopePage:
    items = tuple(
        EnvelopeSummary(
            i, f"ENV-{i}", f"Contrato   <{i}> " + "x" * 40, EnvelopeStatus.PENDENTE, NOW
        )
        for i in (7, 8)
    )
    return EnvelopePage(tab, number, pages, 30, items, COUNTS, "", "UTC", NOW)


def card(actions: tuple[CardAction, ...], envelope_id: int = 7) -> EnvelopeCard:
    env = Envelope(1, "ENV-7", "Contrato", NOW, status=EnvelopeStatus.RASCUNHO, id=envelope_id)
    return EnvelopeCard(env, "UTC", 1, actions, {}, NOW)


ACCOUNT = Account(1, "Imobiliária <Sol>", "essencial", "America/Manaus", 0, 1, None, NOW)
PLANS = (
    Plan("essencial", "Essencial", 20, 5, False, False),
    Plan("pro", "Pro & Cia", 100, 20, True, True),
)


def signed_by(*names: str) -> Envelope:
    signers = [Signer(n, f"{i}@x.com", "+5511987654321", id=i) for i, n in enumerate(names, 1)]
    return Envelope(
        1, "ENV-7", "Contrato", NOW, status=EnvelopeStatus.PENDENTE, id=7, signers=signers
    )


def python_telegram_bot_form(markup: kb.Markup) -> dict[str, object]:
    """What python-telegram-bot sends for the same buttons built as its own objects."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    b["text"], callback_data=b.get("callback_data"), url=b.get("url")
                )
                for b in row
            ]
            for row in markup["inline_keyboard"]
        ]
    ).to_dict()


def rows(markup: kb.Markup | None, language: str) -> list[list[tuple[str, str]]]:
    """Each button as (text, callback data or URL), once its wire form is held to the library's."""
    assert markup is not None
    assert markup == python_telegram_bot_form(markup), language
    # Sent as it is: the request's JSON is this dict's, with nothing converted on the way.
    sent = RequestParameter.from_input("reply_markup", markup)
    assert sent.value is markup and json.loads(sent.json_value or "") == markup
    return [
        [(b["text"], b.get("callback_data") or b["url"]) for b in row]
        for row in markup["inline_keyboard"]
    ]


def in_language(
    language: str, build: Callable[[], kb.Markup | None]
) -> list[list[tuple[str, str]]]:
    token = current_language.set(language)
    try:
        return rows(build(), language)
    finally:
        current_language.reset(token)


def test_the_list_keyboard_has_items_pager_tabs_with_counts_and_search() -> None:
    title = "Contrato <7> " + "x" * 26 + "…"
    assert in_language("pt-BR", lambda: kb.envelope_list(page())) == [
        [(f"{title} · ENV-7", "env:7")],
        [(title.replace("7", "8") + " · ENV-8", "env:8")],
        [("◀ Anterior", "ls:pen:0"), ("Próxima ▶", "ls:pen:2")],
        [("» Pendentes (12)", "ls:pen:0"), ("Vencendo (1)", "ls:ven:0")],
        [("Rascunhos (1.234)", "ls:ras:0"), ("Bloqueados (0)", "ls:blo:0")],
        [("Concluídos (0)", "ls:con:0"), ("Cancelados (0)", "ls:can:0")],
        [("🔎 Buscar", "find")],
    ]


def test_tab_counts_are_grouped_as_numbers_are_in_each_language() -> None:
    """The labels say the counts as the list's header does: 1.234 in pt-BR and es, 1,234 in
    English, and a cached tab row of one language is not served to another."""
    drafts = {"pt-BR": "Rascunhos (1.234)", "es": "Borradores (1.234)", "en": "Drafts (1,234)"}
    for _ in range(2):
        for language, label in drafts.items():
            assert in_language(language, lambda: kb.envelope_list(page()))[4][0] == (
                label,
                "ls:ras:0",
            )


def test_cached_keyboards_follow_the_language_of_each_update() -> None:
    for _ in range(2):
        en = in_language("en", lambda: kb.envelope_list(page(Tab.BUSCA, 0, 1)))
        pt = in_language("pt-BR", lambda: kb.envelope_list(page(Tab.BUSCA, 0, 1)))
        assert en[2] == [("Pending (12)", "ls:pen:0"), ("Due soon (1)", "ls:ven:0")]
        assert pt[2] == [("Pendentes (12)", "ls:pen:0"), ("Vencendo (1)", "ls:ven:0")]
        en_card = in_language("en", lambda: kb.envelope_card(card((CardAction.SEAL,))))
        pt_card = in_language("pt-BR", lambda: kb.envelope_card(card((CardAction.SEAL,))))
        assert en_card[0] == [("Seal (1 credit)", "env:7:seal")]
        assert pt_card[0] == [("Lacrar (1 crédito)", "env:7:seal")]


def test_a_card_shows_only_its_actions_then_refresh_and_back() -> None:
    actions = (CardAction.RESEND, CardAction.BLOCK, CardAction.CANCEL)
    assert in_language("pt-BR", lambda: kb.envelope_card(card(actions))) == [
        [("Reenviar", "env:7:resend"), ("Bloquear Envelope", "env:7:block")],
        [("Cancelar", "env:7:cancel")],
        [("Atualizar", "env:7"), ("Voltar", "ls:ras:0")],
    ]
    assert in_language("es", lambda: kb.envelope_card(card((), envelope_id=8))) == [
        [("Actualizar", "env:8"), ("Volver", "ls:ras:0")],
    ]


BUILDERS: dict[str, Callable[[], kb.Markup | None]] = {
    "list": lambda: kb.envelope_list(page()),
    "list, last page of a search": lambda: kb.envelope_list(page(Tab.BUSCA, 2, 3)),
    "card": lambda: kb.envelope_card(card(tuple(CardAction))),
    "card without actions": lambda: kb.envelope_card(card(())),
    "confirm": lambda: kb.confirm("n0nce-0123456789_abc"),
    "back to the card": lambda: kb.back_to(7),
    "back to the card or plans": lambda: kb.back_to(7, plans=True),
    "resend menu": lambda: kb.resend_menu(signed_by("Ana <b>", "Bia " + "x" * 60)),
    "channel menu": lambda: kb.channel_menu(
        ResendChoice(
            signed_by("Ana"),
            1,
            "Ana",
            (
                ChannelOption(Channel.EMAIL, 0, None, {}),
                ChannelOption(Channel.SMS, 2, None, {}),
                ChannelOption(Channel.WHATSAPP, 1, "no_phone", {}),
            ),
            3,
        )
    ),
    "plans with Adquirir links": lambda: kb.plans(
        PlansView(
            ACCOUNT,
            PLANS[0],
            PLANS[1:],
            (NotificationPack("pack 10", 10, 1990), NotificationPack("p50", 50, 7990)),
            Balances(3, 1),
        ),
        "https://pay.example/{account_id}/{item}?a=1&b=2",
    ),
    "history": lambda: kb.history(HistoryPage(1, 3, 60, (), "UTC")),
    "languages": kb.languages,
    "plans only": kb.planos_only,
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", BUILDERS)
def test_every_keyboard_is_what_python_telegram_bot_would_send(name: str, language: str) -> None:
    first = in_language(language, BUILDERS[name])
    assert first and all(text and data for row in first for text, data in row)
    # Built again from the caches, and no use of the first one changed what they hold.
    assert in_language(language, BUILDERS[name]) == first


def test_keyboards_differ_by_language_and_url_buttons_link_to_the_payment_page() -> None:
    built = {lang: in_language(lang, BUILDERS["plans with Adquirir links"]) for lang in LANGUAGES}
    assert len({str(labels) for labels in built.values()}) == len(LANGUAGES)
    assert [data for row in built["pt-BR"] for _, data in row] == [
        "https://pay.example/1/pack%2010?a=1&b=2",
        "https://pay.example/1/p50?a=1&b=2",
        "https://pay.example/1/pro?a=1&b=2",
        "ls:pen:0",
    ]


def test_the_search_prompt_forces_a_reply_like_python_telegram_bot() -> None:
    assert kb.force_reply() == ForceReply(selective=True).to_dict()


@pytest.mark.parametrize("layout", [[[1]], [[1, 2], [3]], [[1], [], [2, 3, 4]]])
def test_our_keyboard_is_what_python_telegram_bot_would_build(layout: list[list[int]]) -> None:
    buttons = [[kb.button(f"b{n}", cb.OpenEnvelope(n)) for n in row] for row in layout]
    ours = kb.markup(buttons)
    reference = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(f"b{n}", callback_data=f"env:{n}") for n in row]
            for row in layout
            if row
        ]
    )
    assert ours == reference.to_dict()
    # The caller's lists are not the keyboard's: changing them later changes nothing sent.
    buttons[0].append(kb.button("b9", cb.OpenEnvelope(9)))
    assert ours == reference.to_dict()


def test_no_button_is_no_keyboard() -> None:
    assert kb.markup([[], []]) is None
