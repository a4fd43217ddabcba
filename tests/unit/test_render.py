"""Rendering: user values escaped, long texts split or trimmed under Telegram's 4096 limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.i18n import LANGUAGES, Raw, current_language, t, time_left
from bot.sandbox.bot_api import parse_html
from bot.telegram import render
from core.browse import EnvelopeCard, EnvelopePage, EnvelopeSummary, Tab, allowed_actions
from core.envelopes import Document, Envelope, EnvelopeStatus, Signer
from core.errors import InsufficientCredits, InvalidState

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & <b>Ana</b> </i>'
DAYS_3 = timedelta(days=3, minutes=7, seconds=20)


def card_for(env: Envelope) -> EnvelopeCard:
    return EnvelopeCard(env, "America/Sao_Paulo", 3, allowed_actions(env, NOW), {}, NOW)


def envelope(signers: int = 2, name: str = "Maria") -> Envelope:
    return Envelope(
        account_id=1,
        ref="ENV-<1>",
        title=HOSTILE,
        description=HOSTILE,
        expires_at=datetime(2026, 12, 10, 21, 0, tzinfo=UTC),
        documents=[Document(HOSTILE + ".pdf", 2)],
        signers=[
            Signer(f"{name} {i} {HOSTILE}", f"s{i}@x.com", None, 0, id=i + 1)
            for i in range(signers)
        ],
        id=7,
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_user_values_are_escaped_so_telegram_parses_the_card(language: str) -> None:
    token = current_language.set(language)
    try:
        html = render.envelope_card(card_for(envelope()))
    finally:
        current_language.reset(token)
    visible = parse_html(html)  # raises like Telegram's "can't parse entities"
    assert HOSTILE in visible and "<script>" not in html


def test_a_card_with_hundreds_of_long_signer_names_stays_under_the_limit() -> None:
    html = render.envelope_card(card_for(envelope(signers=400, name="N" * 150)))
    assert len(html) < render.MAX_MESSAGE
    assert "… e mais" in html
    parse_html(html)


def test_a_card_with_many_long_document_names_stays_under_the_limit_and_says_what_it_hides() -> (
    None
):
    """40 documents of 200 characters (no cap on import) made a card of 8,915 characters,
    which was then sent again in three parts instead of edited. Both lists are cut, the longer
    first, and each says how many of its lines it hides."""
    env = envelope(signers=30, name="S" * 120)
    env.documents = [Document(f"{i:02d}-" + "d" * 196 + ".pdf", 3) for i in range(40)]
    html = render.envelope_card(card_for(env))
    assert len(html) < render.MAX_MESSAGE
    parse_html(html)
    lines = html.split("\n")
    docs_at, signers_at = lines.index("<b>Documentos</b>"), lines.index("<b>Signatários</b>")
    doc_lines = lines[docs_at + 1 : signers_at - 1]
    signer_lines = lines[signers_at + 1 :]
    hidden_docs = 40 - (len(doc_lines) - 1)
    hidden_signers = 30 - (len(signer_lines) - 1)
    assert doc_lines[-1] == f"… e mais {hidden_docs}" and hidden_docs > 0
    assert signer_lines[-1] == f"… e mais {hidden_signers}" and hidden_signers > 0
    # The first lines of each list are kept, in order.
    assert doc_lines[0].startswith("• 00-ddd") and doc_lines[1].startswith("• 01-ddd")
    assert len(doc_lines) >= 2 and len(signer_lines) >= 2


def test_a_card_that_fits_is_not_cut() -> None:
    html = render.envelope_card(card_for(envelope(signers=12)))
    assert "… e mais" not in html
    assert html.count("Maria ") == 12


def test_long_texts_split_at_line_breaks_under_4096_characters() -> None:
    lines = [f"<b>linha {i}</b> " + "x" * 90 for i in range(200)]
    parts = render.split_html("\n".join(lines))
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == "\n".join(lines)
    for part in parts:
        parse_html(part)


def test_one_overlong_plain_line_is_cut_hard() -> None:
    parts = render.split_html("y" * 9000)
    assert [len(p) for p in parts] == [4096, 4096, 808]


def test_refusals_say_what_is_missing_in_the_users_words() -> None:
    exc = InsufficientCredits(pool="credits", needed=25, balance=20, missing=5)
    assert "Faltam <b>5 créditos</b>" in render.refusal(exc)
    exc = InsufficientCredits(pool="notification", needed=1, balance=0, missing=1)
    assert "1 crédito de notificação" in render.refusal(exc)
    assert "expirou" in render.refusal(InvalidState(reason="expired"))
    assert "já assinou" in render.refusal(InvalidState(reason="signed"))


def test_every_status_has_a_word_in_every_language() -> None:
    for language in LANGUAGES:
        token = current_language.set(language)
        try:
            for status in EnvelopeStatus:
                env = envelope()
                env.status = status
                assert not render.status_word(env, NOW).startswith("status.")
        finally:
            current_language.reset(token)


def test_every_text_key_the_bot_uses_exists_in_every_language() -> None:
    import re
    from pathlib import Path

    import bot
    from bot.i18n import catalog
    from core.browse import Tab
    from core.confirmations import TRANSITIONS
    from core.delivery import REASONS
    from core.ledger import Reason
    from core.notifications import Channel, DeliveryStatus

    # All of bot/: the delivery notices and the scheduler's nudges use `t` too, and a key
    # missing everywhere would show as itself, not fail.
    source = "\n".join(p.read_text() for p in Path(bot.__file__).parent.rglob("*.py"))
    literal = set(re.findall(r'(?:\bt|label|label_in)\(\s*(?:language,\s*)?"([a-z_.\-]+)"', source))
    dynamic = {
        *(f"tab.{t.value}" for t in Tab),
        *(f"status.{s}" for s in ("rascunho", "pendente", "bloqueado", "concluido")),
        *(f"status.{s}" for s in ("cancelado", "expirado", "excluido")),
        *(f"signer.{s}" for s in ("pendente", "assinado")),
        *(f"channel.{c.value}" for c in Channel),
        *(f"kb.channel.{c.value}" for c in Channel),
        *(f"delivery.{d.value}" for d in DeliveryStatus),
        *(f"delivery.reason.{r}" for r in REASONS),
        *(f"delivery.channel.{c}" for c in Channel),
        "delivery.refunded",
        *(f"ledger.{r.value}" for r in Reason),
        *(f"{a.value}.confirm" for a in TRANSITIONS),
        *(f"{a.value}.done" for a in TRANSITIONS),
        *(f"link.{r}" for r in ("used", "expired", "unknown")),
        *(f"role.{r}" for r in ("admin", "member")),
        *(f"language.{c}" for c in LANGUAGES),
        *(f"confirm.{r}" for r in ("used", "expired")),
        *(f"seal.needs.{m}" for m in ("signer", "document", "expires_at")),
        *(f"amount.{p}.{n}" for p in ("credits", "notification") for n in ("one", "other")),
        *(f"why.{w}" for w in ("no_phone", "cooldown", "not_mobile", "country", "signed")),
        *(f"why.{w}" for w in ("expired", "not_in_turn", "envelope_state", "nobody")),
        *(f"cmd.{c}" for c in ("envelopes", "saldo", "planos", "historico", "lembretes")),
        *(f"cmd.{c}" for c in ("idioma", "ajuda", "desvincular")),
    }
    assert len(literal) > 150
    for language in LANGUAGES:
        missing = sorted(k for k in literal | dynamic if not catalog(language).get(k))
        assert missing == [], language


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_list_line_is_what_t_makes_of_its_values(language: str) -> None:
    """`envelope_list` and `deadline` fill their texts in without `t`'s per-value checks; they
    must be exactly what `t` makes of the same values: user values escaped, rendered fragments
    as they are, every kind of deadline and status, on a later page."""
    zone = "America/Sao_Paulo"
    s = EnvelopeStatus
    items = (
        EnvelopeSummary(11, "ENV-<1> & {ref}", HOSTILE + " {title}", s.PENDENTE, NOW + DAYS_3),
        EnvelopeSummary(12, "ENV-2", "Vencido", s.PENDENTE, NOW - timedelta(hours=2)),
        EnvelopeSummary(13, "ENV-3", "Sem prazo", s.RASCUNHO, None),
        EnvelopeSummary(14, "ENV-4", "Concluído", s.CONCLUIDO, NOW + timedelta(seconds=3570)),
        EnvelopeSummary(15, "ENV-5", "Agora", s.PENDENTE, NOW + timedelta(seconds=30)),
    )
    page = EnvelopePage(Tab.PENDENTES, 2, 3, 21, items, {}, "", zone, NOW)

    def deadline_by_t(env: EnvelopeSummary) -> str:
        if env.expires_at is None:
            return t("deadline.none")
        moment = Raw(render.when(env.expires_at, zone))
        if env.expires_at <= NOW:
            return t("deadline.past", when=moment)
        minutes = (env.expires_at - NOW).total_seconds() // 60
        return t("deadline.left", when=moment, left=Raw(time_left(minutes * 60)))

    token = current_language.set(language)
    try:
        deadlines = [render.deadline(env, zone, NOW) for env in items]
        assert deadlines == [deadline_by_t(env) for env in items]
        expected = [
            t(
                "list.item",
                n=Raw(render.number(n)),
                title=env.title,
                ref=env.ref,
                status=Raw(render.status_word(env, NOW)),
                deadline=Raw(deadline_by_t(env)),
            )
            for n, env in enumerate(items, start=17)
        ]
        text = render.envelope_list(page)
    finally:
        current_language.reset(token)
    blocks = text.split("\n\n")
    assert blocks[1:-1] == expected
    assert "&lt;script&gt;" in blocks[1] and "{title}" in blocks[1] and "{ref}" in blocks[1]
    assert len(set(deadlines)) == len(deadlines)  # none, past and three durations
    assert parse_html(text)  # Telegram would parse it
