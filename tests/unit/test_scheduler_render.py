"""The scheduler's messages: escaped, short enough, buttons within Telegram's 64 bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.scheduler import render
from bot.scheduler.handlers import parse_mute, parse_setting
from core.accounts import Account
from core.envelopes import Envelope, EnvelopeStatus, Signer, SignerStatus
from core.ledger import Balances
from core.plans import DEFAULT_PLANS
from core.reminders import (
    DAY,
    AlertKind,
    BalanceCheck,
    BalanceNotice,
    ExpiryNotice,
    NudgeNotice,
    Recipient,
    ReminderSettings,
    ReminderView,
    RenewalNotice,
    renewal_step,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
BIG = 999_999_999_999_999_999  # the largest id the bot's callback parser takes (18 digits)
ACCOUNT = Account(1, "Imobiliária <Sol>", "essencial", "America/Manaus", 0, 1, None, NOW)
ME = (Recipient(1, 10, "pt-BR"),)


def envelope(signers: int = 2, *, title: str = "Contrato", phones: bool = True) -> Envelope:
    return Envelope(
        account_id=1,
        ref="ENV-1",
        title=title,
        expires_at=NOW + 3 * DAY,
        status=EnvelopeStatus.PENDENTE,
        id=BIG,
        signers=[
            Signer(
                f"Signatária {i} " + "de Souza " * 10,
                f"s{i}@example.com",
                "+5511987654321" if phones else None,
                id=BIG - i,
            )
            for i in range(signers)
        ],
    )


def test_user_values_are_escaped_in_the_nudge() -> None:
    env = envelope(title="<script>alert(1)</script> & Cia")
    env.signers[0].name = "Ana <b>"
    page = render.nudge(NudgeNotice(1, env, ACCOUNT, DAY, ME, 1), "pt-BR", NOW)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cia" in page.html
    assert "Ana &lt;b&gt;" in page.html and "<script>" not in page.html
    assert "04/12/2026 08:00" in page.html  # the deadline in Manaus time


def test_every_button_fits_in_64_bytes_even_with_the_largest_ids() -> None:
    env = envelope(signers=10)
    page = render.nudge(NudgeNotice(1, env, ACCOUNT, DAY, ME, 2), "pt-BR", NOW)
    assert page.markup is not None
    data = [b.callback_data for row in page.markup.inline_keyboard for b in row]
    assert all(isinstance(d, str) and len(d.encode()) <= 64 for d in data)
    assert len(page.markup.inline_keyboard) == 1 + render.MAX_SIGNER_BUTTONS + 1
    sms = page.markup.inline_keyboard[1][0].text
    assert sms == "SMS Signatária (2 créditos de notificação)"
    with pytest.raises(ValueError, match="64"):
        render.callback("rsc:" + "9" * 70)


def test_a_nudge_with_many_signers_stays_far_below_telegrams_4096_characters() -> None:
    env = envelope(signers=60, title="T" * 300)
    page = render.nudge(NudgeNotice(1, env, ACCOUNT, DAY, ME, 1), "pt-BR", NOW)
    assert len(page.html) < 4096
    assert "… e mais 48" in page.html


def test_signers_not_yet_in_turn_are_listed_without_buttons() -> None:
    env = envelope(signers=2)
    env.ordered = True
    env.signers[1].order = 1
    page = render.nudge(NudgeNotice(1, env, ACCOUNT, DAY, ME, 1), "pt-BR", NOW)
    assert "(aguardando a vez)" in page.html
    assert page.markup is not None and len(page.markup.inline_keyboard) == 3


def test_the_mute_button_goes_away_and_the_others_stay() -> None:
    page = render.nudge(NudgeNotice(1, envelope(), ACCOUNT, DAY, ME, 1), "pt-BR", NOW)
    kept = render.without_mute(page.markup)
    assert kept is not None
    data = [b.callback_data for row in kept.inline_keyboard for b in row]
    assert not any(str(d).startswith("mute:") for d in data) and f"env:{BIG}" in data


@pytest.mark.parametrize(
    ("language", "words"),
    [("pt-BR", "Prazo se aproximando"), ("en", "Deadline approaching"), ("es", "Se acerca")],
)
def test_nudges_speak_the_recipients_language(language: str, words: str) -> None:
    page = render.nudge(NudgeNotice(1, envelope(), ACCOUNT, DAY, ME, 1), language, NOW)
    assert words in page.html


def test_notices_for_expiry_renewal_and_low_balance() -> None:
    env = envelope()
    expired = render.expiry(ExpiryNotice(1, env, ACCOUNT, ME), "en")
    assert "Envelope expired" in expired.html
    plan = next(p for p in DEFAULT_PLANS if p.code == "pessoa-fisica")
    step = renewal_step(plan, NOW, NOW, credits=7)
    renewed = render.renewal(RenewalNotice(1, ACCOUNT, plan, step, Balances(20, 5), ME), "pt-BR")
    assert "7 créditos não usados expiraram" in renewed.html and "+20 créditos" in renewed.html
    check = BalanceCheck(Balances(0, 1), 2, drafts=0, drafts_credits=0)
    low = render.balance(BalanceNotice(ACCOUNT, AlertKind.NOTIFICATION, check, ME), "es")
    assert "Quedan 1" in low.html
    assert low.markup is not None and low.markup.inline_keyboard[0][0].callback_data == "pl"


def test_the_settings_page_and_its_buttons_round_trip() -> None:
    view = ReminderView(ACCOUNT, ReminderSettings(), can_edit=True)
    page = render.settings_page(view, "pt-BR")
    assert page.markup is not None
    data = [str(b.callback_data) for row in page.markup.inline_keyboard for b in row]
    assert all(parse_setting(d) is not None for d in data)
    change = parse_setting("rem:o:604800:1")
    assert change is not None and change(ReminderSettings()).offsets[0] == 7 * DAY
    resend = parse_setting("rem:a:7")
    assert resend is not None and resend(ReminderSettings()).auto_resend_days == 7
    assert parse_setting("rem:o:3600:2") is None and parse_setting("rem:q:5") is None
    assert parse_mute("mute:12") == 12 and parse_mute("mute:012") is None
    assert parse_mute("mute:1:2") is None and parse_mute(None) is None


def test_members_see_the_settings_without_buttons() -> None:
    view = ReminderView(ACCOUNT, ReminderSettings(enabled=False), can_edit=False)
    page = render.settings_page(view, "en")
    assert page.markup is None and "Status: off" in page.html
    assert "Only the account's administrators" in page.html


def test_time_left_never_reads_zero() -> None:
    env = envelope()
    env.expires_at = NOW + timedelta(seconds=5)
    env.signers[0].status = SignerStatus.PENDENTE
    page = render.nudge(NudgeNotice(1, env, ACCOUNT, DAY, ME, 1), "pt-BR", NOW)
    assert "faltam 60 segundos" in page.html and "faltam 0" not in page.html
