"""Keyboards: the labels, callback data and layout users see, whatever was cached before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from telegram import InlineKeyboardMarkup

from bot.i18n import current_language
from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from core.browse import CardAction, EnvelopeCard, EnvelopePage, EnvelopeSummary, Tab
from core.envelopes import Envelope, EnvelopeStatus

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


def rows(markup: InlineKeyboardMarkup | None, language: str) -> list[list[tuple[str, str]]]:
    assert markup is not None
    wire = markup.to_dict()["inline_keyboard"]
    plain = [[(b.text, str(b.callback_data)) for b in row] for row in markup.inline_keyboard]
    assert plain == [[(b["text"], b["callback_data"]) for b in row] for row in wire], language
    return plain


def in_language(
    language: str, build: Callable[[], InlineKeyboardMarkup | None]
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
        [("Rascunhos (1234)", "ls:ras:0"), ("Bloqueados (0)", "ls:blo:0")],
        [("Concluídos (0)", "ls:con:0"), ("Cancelados (0)", "ls:can:0")],
        [("🔎 Buscar", "find")],
    ]


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


@pytest.mark.parametrize("layout", [[[1]], [[1, 2], [3]], [[1], [], [2, 3, 4]]])
def test_our_keyboard_is_what_python_telegram_bot_would_build(layout: list[list[int]]) -> None:
    buttons = [[kb.button(f"b{n}", cb.OpenEnvelope(n)) for n in row] for row in layout]
    ours = kb.markup(buttons)
    assert ours is not None
    reference = type(ours).__new__(type(ours))
    InlineKeyboardMarkup.__init__(reference, [row for row in buttons if row])
    slots = {s for c in type(ours).__mro__ for s in getattr(c, "__slots__", ())}
    assert slots >= {"inline_keyboard", "_id_attrs", "_frozen", "_bot", "api_kwargs"}
    for slot in slots - {"__weakref__"}:
        assert getattr(ours, slot) == getattr(reference, slot), slot
    assert ours == reference and hash(ours) == hash(reference)
    assert ours.to_json() == InlineKeyboardMarkup(ours.inline_keyboard).to_json()
    with pytest.raises(AttributeError):
        ours.inline_keyboard = ()
