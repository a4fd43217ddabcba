"""More owner flows through the real Application against the fake Bot API: the "Vencendo" tab,
a free e-mail to one signer, a failing command, a stale "Reenviar", texts per locale, what a
member reads in /historico, and a delivered SMS on the card."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import BadRequest

from bot.bootstrap import App
from bot.sandbox.twilio_api import TwilioApiServer
from core.clock import FixedClock
from core.envelopes import EnvelopeStatus
from core.notifications import Channel, DeliveryStatus, Kind, Notification
from storage.audit import audit
from tests.support.bot_flows import (
    balances,
    pending_envelope,
    person,
    signer_id,
    snapshot,
)
from tests.support.bot_harness import running_bot
from tests.support.builders import envelope_json, import_envelopes, seed_account
from tests.support.delivery import (
    Callbacks,
    callbacks,
    no_retry_waits,
    twilio,
    twilio_sender,
    worker,
)

__all__ = ["callbacks", "no_retry_waits", "twilio"]  # fixtures used by name


def labels(message_buttons: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in message_buttons]


def _notifications(app: App, env_id: int) -> list[Notification]:
    with app.uow(write=False) as uow:
        return uow.notifications.for_envelope(env_id)


# -- the "Vencendo" tab --------------------------------------------------------------------------
async def test_vencendo_lists_only_pending_envelopes_due_within_three_days_soonest_first(
    app: App, clock: FixedClock
) -> None:
    """Now is 27/11/2026 11:00 in São Paulo (14:00 UTC): due in 6 h, in 2 days and in 70 h are
    listed, in that order (neither the order of their ids nor its reverse); due in 5 days, a
    draft due tomorrow and one already expired are not."""
    seeded = seed_account(app, credits=10)
    ids = import_envelopes(
        app,
        seeded.account.id,
        envelope_json("ENV-B", title="Em dois dias", expires_at="2026-11-29T11:00:00-03:00"),
        envelope_json("ENV-A", title="Em seis horas", expires_at="2026-11-27T17:00:00-03:00"),
        envelope_json("ENV-F", title="Em setenta horas", expires_at="2026-11-30T09:00:00-03:00"),
        envelope_json("ENV-C", title="Em cinco dias", expires_at="2026-12-02T11:00:00-03:00"),
        envelope_json("ENV-E", title="Já expirado", expires_at="2026-11-27T10:00:00-03:00"),
        envelope_json("ENV-D", title="Rascunho de amanhã", expires_at="2026-11-28T11:00:00-03:00"),
    )
    for ref in ("ENV-B", "ENV-A", "ENV-F", "ENV-C", "ENV-E"):
        app.lacre.seal(seeded.admin.id, ids[ref])
    clock.advance(timedelta(hours=2))  # ENV-E's deadline passes while it is still pending
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        listing = await bot.say(ana, "/envelopes")
        assert labels(listing.buttons())[5:7] == ["» Pendentes (5)", "Vencendo (3)"]
        await bot.press(ana, listing, "Vencendo")
        assert listing.text == (
            "Envelopes · Vencendo (3)\n"
            "\n"
            "1. Em seis horas · ENV-A\n"
            "pendente · 27/11/2026 17:00 (faltam 6 horas)\n"
            "\n"
            "2. Em dois dias · ENV-B\n"
            "pendente · 29/11/2026 11:00 (faltam 2 dias)\n"
            "\n"
            "3. Em setenta horas · ENV-F\n"
            "pendente · 30/11/2026 09:00 (faltam 3 dias)"
        )
        assert labels(listing.buttons()) == [
            "Em seis horas · ENV-A",
            "Em dois dias · ENV-B",
            "Em setenta horas · ENV-F",
            "Pendentes (5)",
            "» Vencendo (3)",
            "Rascunhos (1)",
            "Bloqueados (0)",
            "Concluídos (0)",
            "Cancelados (0)",
            "🔎 Buscar",
        ]
        assert [b["callback_data"] for b in listing.buttons()[:3]] == [
            f"env:{ids['ENV-A']}",
            f"env:{ids['ENV-B']}",
            f"env:{ids['ENV-F']}",
        ]


# -- resend: a free e-mail to one signer ---------------------------------------------------------
async def test_a_free_email_to_one_signer_queues_one_email_and_charges_nothing(
    app: App, clock: FixedClock
) -> None:
    seeded = seed_account(app, credits=10)
    env_id = pending_envelope(app, seeded)
    maria = signer_id(app, seeded, env_id, "maria@example.com")
    clock.advance(timedelta(minutes=5))  # past the cooldown of the seal's own e-mails
    before = snapshot(app)
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        card = await bot.card(ana, env_id)
        await bot.press(ana, card, "Reenviar")
        await bot.press(ana, card, "Maria Souza")
        assert card.text == (
            "Reenviar para Maria Souza\nContrato de locação · ENV-1001\n\n"
            "Saldo: 5 créditos de notificação"
        )
        assert labels(card.buttons()) == [
            "E-mail (grátis)",
            "SMS (1 crédito de notificação)",
            "WhatsApp (1 crédito de notificação)",
            "Voltar",
        ]
        answer = await bot.press(ana, card, "E-mail (grátis)")
        assert answer.text == "Na fila de envio." and not answer.show_alert
        receipt = bot.last(ana)
        assert receipt is not card
        assert receipt.text == (
            "📧 Requisição de Assinatura na fila por e-mail para Maria Souza (grátis)."
        )
        assert receipt.button("Informações do Envelope")["callback_data"] == f"env:{env_id}"
    resent = [n for n in _notifications(app, env_id) if n.kind is Kind.RESEND]
    assert [(n.channel, n.signer_id, n.destination, n.cost, n.status) for n in resent] == [
        (Channel.EMAIL, maria, "maria@example.com", 0, DeliveryStatus.QUEUED)
    ]
    after = snapshot(app)
    assert after["accounts"] == before["accounts"] and after["ledger"] == before["ledger"]
    assert len(after["notifications"]) == len(before["notifications"]) + 1
    assert balances(app, seeded) == (37, 5)


# -- errors --------------------------------------------------------------------------------------
async def test_a_failing_command_tells_the_user_the_id_that_the_log_carries(
    sqlite_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        bot.api.fail_next("sendMessage", 400, "Bad Request: chat not found")
        reply = await bot.say(ana, "/saldo")
        found = re.fullmatch(
            r"Algo deu errado ao processar seu pedido\. Tente de novo em instantes; "
            r"se continuar, informe ao suporte o código ([0-9a-f]{8})\.",
            reply.text,
        )
        assert found is not None, reply.text
        error_id = found.group(1)
        assert reply.buttons() == []
        await bot.api.idle()
        assert len(bot.api.bot_messages(ana.id)) == 1  # the balance never got through
    [record] = [
        r for r in caplog.records if r.name == "bot.telegram" and r.levelno == logging.ERROR
    ]
    assert record.getMessage() == f"update failed [error {error_id}]"
    assert record.exc_info is not None and record.exc_info[0] is BadRequest
    assert str(record.exc_info[1]) == "Chat not found"  # what the user was spared


# -- resend on an envelope that is no longer pending ---------------------------------------------
@pytest.mark.parametrize(
    ("ending", "alert", "status_line", "buttons"),
    [
        (
            "concluido",
            "O envelope não está pendente (concluído)",
            "Status: concluído",
            ["Atualizar", "Voltar"],
        ),
        (
            "cancelado",
            "O envelope não está pendente (cancelado)",
            "Status: cancelado",
            ["Atualizar", "Voltar"],
        ),
        ("expirado", "O envelope expirou", "Status: expirado", ["Cancelar", "Atualizar", "Voltar"]),
    ],
    ids=["concluido", "cancelado", "expirado"],
)
async def test_reenviar_on_a_stale_card_says_why_shows_the_card_and_spends_nothing(
    app: App, clock: FixedClock, ending: str, alert: str, status_line: str, buttons: list[str]
) -> None:
    seeded = seed_account(app, credits=10)
    env_id = pending_envelope(app, seeded)
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        card = await bot.card(ana, env_id)
        stale = card.button("Reenviar")["callback_data"]
        assert stale == f"env:{env_id}:resend"
        if ending == "concluido":
            app.lacre.record_signature("ENV-1001", "maria@example.com", seeded.account.id)
            app.lacre.record_signature("ENV-1001", "joao@example.com", seeded.account.id)
        elif ending == "cancelado":
            app.lacre.cancel(seeded.admin.id, env_id)
        else:
            clock.advance(timedelta(days=14))  # past 10/12/2026 18:00
        before = snapshot(app)
        answer = await bot.tap(ana, card, stale)
        assert answer.show_alert and answer.text == alert
        assert status_line in card.text.splitlines()
        assert labels(card.buttons()) == buttons
        assert len(bot.api.bot_messages(ana.id)) == 1  # the card, edited; nothing new sent
    assert snapshot(app) == before
    assert balances(app, seeded) == (37, 5)


# -- locales -------------------------------------------------------------------------------------
async def test_the_card_shows_the_deadline_in_the_users_locale(sqlite_app: App) -> None:
    """Deadline 10/12/2026 18:00 in São Paulo, now 27/11/2026 09:00 there: 13 days and 9 hours,
    which Babel rounds to two weeks."""
    seeded = seed_account(sqlite_app, credits=10)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin, language="en-US")
    async with running_bot(sqlite_app) as bot:
        card = await bot.card(ana, env_id)
        assert card.text.splitlines()[:5] == [
            "Envelope information",
            "Contrato de locação",
            "Reference: ENV-1001",
            "Status: draft",
            "Expiration date: 12/10/26, 6:00\u202fPM (2 weeks left)",
        ]
        chooser = await bot.say(ana, "/idioma")
        await bot.press(ana, chooser, "Español")
        await bot.press(ana, card, "Refresh")  # built in English
        assert card.text.splitlines()[:5] == [
            "Información del sobre",
            "Contrato de locação",  # the title is the owner's, not translated
            "Referencia: ENV-1001",
            "Estado: borrador",
            "Fecha de vencimiento: 10/12/26, 18:00 (faltan 2 semanas)",
        ]


async def test_saldo_groups_the_digits_as_each_locale_does(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=1_234_567 - 30)  # plus the plan's 30
    ana = person(seeded.admin)
    expected = {
        "pt-BR": "💳 Créditos: 1.234.567     🔔 Créditos de notificação: 5",
        "en": "💳 Credits: 1,234,567     🔔 Notification credits: 5",
        "es": "💳 Créditos: 1.234.567     🔔 Créditos de notificación: 5",
    }
    async with running_bot(sqlite_app) as bot:
        for code, line in expected.items():
            chooser = await bot.say(ana, "/idioma")
            await bot.tap(ana, chooser, f"lang:{code}")
            saldo = await bot.say(ana, "/saldo")
            assert saldo.text.splitlines()[2] == line, code
    assert balances(sqlite_app, seeded) == (1_234_567, 5)


# -- history -------------------------------------------------------------------------------------
async def test_a_member_reads_every_entry_but_only_their_own_envelopes_titles(app: App) -> None:
    seeded = seed_account(app, credits=10)
    ids = import_envelopes(
        app,
        seeded.account.id,
        envelope_json("ENV-ADM", title="Do admin"),
        envelope_json("ENV-MEM", title="Do membro", created_by=seeded.member.id),
    )
    app.lacre.seal(seeded.admin.id, ids["ENV-ADM"])
    app.lacre.seal(seeded.member.id, ids["ENV-MEM"])
    entries = [
        "27/11/2026 09:00 · −3 créditos · lacre de envelope",
        "27/11/2026 09:00 · −3 créditos · lacre de envelope",
        "27/11/2026 09:00 · +10 créditos · ajuste",
        "27/11/2026 09:00 · +5 créditos de notificação · créditos do plano",
        "27/11/2026 09:00 · +30 créditos · créditos do plano",
    ]
    async with running_bot(app) as bot:
        as_member = await bot.say(person(seeded.member), "/historico")
        as_admin = await bot.say(person(seeded.admin), "/historico")
    head = "Histórico de créditos (5) · página 1 de 1"
    # The admin's seal is listed with its amount, but without the envelope's ref and title.
    assert as_member.text.split("\n\n") == [
        head,
        entries[0] + "\n↳ ENV-MEM · Do membro",
        entries[1],
        *entries[2:],
    ]
    assert as_admin.text.split("\n\n") == [
        head,
        entries[0] + "\n↳ ENV-MEM · Do membro",
        entries[1] + "\n↳ ENV-ADM · Do admin",
        *entries[2:],
    ]


# -- delivery on the card ------------------------------------------------------------------------
async def test_a_delivered_sms_shows_as_entregue_on_the_card(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks
) -> None:
    """Confirmed in the bot, sent by the worker to the fake Twilio, and reported delivered by a
    signed status callback to the HTTP app."""
    seeded = seed_account(app, credits=10)
    env_id = pending_envelope(app, seeded)
    maria = signer_id(app, seeded, env_id, "maria@example.com")
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"rsc:{env_id}:{maria}:sms")
        confirmation = bot.last(ana)
        await bot.press(ana, confirmation, "Confirmar")
        assert confirmation.text.splitlines()[0] == "📨 SMS na fila para Maria Souza."
        sender = twilio_sender(twilio, callbacks.public_url)
        try:
            assert await worker(app, messages=sender).run_once() == 1
        finally:
            await sender.close()
        await bot.tap(ana, card, f"env:{env_id}")
        signers = card.text.split("Signatários\n")[1].splitlines()
        assert signers == [
            "• Maria Souza: pendente · SMS enviado",
            "• João Lima: pendente · E-mail na fila",
        ]
        [message] = twilio.api.messages.values()
        assert await twilio.api.progress(message.sid, "delivered") == 204
        await bot.press(ana, card, "Atualizar")
        signers = card.text.split("Signatários\n")[1].splitlines()
        assert signers == [
            "• Maria Souza: pendente · SMS entregue",
            "• João Lima: pendente · E-mail na fila",
        ]
    [sms] = [n for n in _notifications(app, env_id) if n.channel is Channel.SMS]
    assert sms.status is DeliveryStatus.DELIVERED
    assert balances(app, seeded) == (37, 4)
    with app.engine.connect() as conn:
        assert audit(conn) == []
    assert app.lacre.envelope(seeded.admin.id, env_id).status is EnvelopeStatus.PENDENTE
