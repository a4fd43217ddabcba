"""Every owner flow through the real python-telegram-bot Application, over real HTTP, against
the fake Bot API on 127.0.0.1 (its base URL plays TELEGRAM_API_BASE_URL)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from telegram.ext import AIORateLimiter

from bot.bootstrap import App
from bot.sandbox.bot_api import FakeUser
from bot.scheduler.handlers import handlers as scheduler_handlers
from core.accounts import Role
from core.clock import FixedClock
from core.envelopes import EnvelopeStatus
from core.ledger import Pool, Reason
from core.notifications import Channel, DeliveryStatus, Notification
from storage.audit import audit
from tests.support.bot_flows import balances, pending_envelope, person, signer_id
from tests.support.bot_harness import running_bot
from tests.support.builders import (
    envelope_json,
    import_envelopes,
    seed_account,
)
from tests.support.scheduler import rows


# -- linking and access -------------------------------------------------------------------------
async def test_a_link_token_links_once_and_then_the_owner_sees_the_account(
    sqlite_app: App,
) -> None:
    account = sqlite_app.lacre.create_account("Imobiliária <Sol> & Cia", "essencial")
    token = sqlite_app.lacre.create_link_token(account.id, Role.ADMIN)
    carla, other = FakeUser(555, "Carla"), FakeUser(556, "Davi")
    async with running_bot(sqlite_app) as bot:
        before = await bot.say(carla, "/envelopes")
        assert "link de acesso" in before.text
        linked = await bot.say(carla, f"/start {token}")
        assert "Imobiliária &lt;Sol&gt; &amp; Cia" in linked.html
        assert "administrador(a)" in linked.text
        again = await bot.say(other, f"/start {token}")
        assert "já foi usado" in again.text
    assert sqlite_app.lacre.actor(556) is None
    actor = sqlite_app.lacre.actor(555)
    assert actor is not None and actor.account_id == account.id


async def test_expired_and_unknown_tokens_are_explained_and_link_nobody(
    sqlite_app: App, clock: FixedClock
) -> None:
    account = sqlite_app.lacre.create_account("Sol", "essencial")
    token = sqlite_app.lacre.create_link_token(account.id)
    clock.advance(timedelta(minutes=16))
    eva = FakeUser(777, "Eva")
    async with running_bot(sqlite_app) as bot:
        assert "expirou" in (await bot.say(eva, f"/start {token}")).text
        assert "Não reconheci" in (await bot.say(eva, "/start nao-existe")).text
        assert "Não reconheci" in (await bot.say(eva, "/start <b>x</b>")).text
    assert sqlite_app.lacre.actor(777) is None


async def test_unlinked_users_get_only_how_to_link(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json())["ENV-1001"]
    stranger = FakeUser(999_001, "Zé")
    async with running_bot(sqlite_app) as bot:
        for command in ("/envelopes", "/saldo", "/planos", "/historico", "/ajuda", "oi"):
            reply = await bot.say(stranger, command)
            assert "link de acesso" in reply.text, command
            assert reply.buttons() == []
        anchor = bot.last(stranger)
        answer = await bot.tap(stranger, anchor, f"env:{env_id}:seal")
        assert answer.show_alert and "não está vinculado" in (answer.text or "")
        assert "Contrato" not in "".join(m.html for m in bot.api.messages(stranger.id))
    assert balances(sqlite_app, seeded) == (10 + 30, 5)


async def test_group_chats_are_told_to_talk_in_private_and_see_nothing(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    import_envelopes(sqlite_app, seeded.account.id, envelope_json())
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        reply = await bot.say(ana, "/envelopes", chat_id=-100123, chat_type="supergroup")
        assert "no privado" in reply.text
        assert reply.buttons() == []
        reply = await bot.say(ana, "/saldo@lacre_sandbox_bot", chat_id=-100123, chat_type="group")
        assert "no privado" in reply.text
        answer = await bot.tap(ana, reply, "env:1")
        assert answer.show_alert and "privado" in (answer.text or "")
        group_text = " ".join(m.text for m in bot.api.bot_messages(-100123))
        assert "Contrato" not in group_text and "créditos" not in group_text


async def test_desvincular_unlinks_this_telegram_user(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        assert "não está mais vinculado" in (await bot.say(ana, "/desvincular")).text
        assert "link de acesso" in (await bot.say(ana, "/saldo")).text
    assert sqlite_app.lacre.actor(ana.id) is None


# -- envelopes: tabs, search, paging, card ----------------------------------------------------
async def test_envelopes_have_tabs_with_counts_search_and_pages_of_eight(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=100)
    drafts = [envelope_json(f"ENV-{i:03d}", title=f"Contrato {i}") for i in range(1, 12)]
    import_envelopes(sqlite_app, seeded.account.id, *drafts)
    soon = envelope_json(
        "ENV-SOON", title="Aditivo urgente", expires_at="2026-11-28T18:00:00-03:00"
    )
    ids = import_envelopes(sqlite_app, seeded.account.id, soon)
    sqlite_app.lacre.seal(seeded.admin.id, ids["ENV-SOON"])
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        listing = await bot.say(ana, "/envelopes")
        labels = [b["text"] for b in listing.buttons()]
        assert "» Pendentes (1)" in labels and "Rascunhos (11)" in labels
        assert "Vencendo (1)" in labels and "Concluídos (0)" in labels
        assert "Aditivo urgente" in listing.text
        await bot.press(ana, listing, "Rascunhos")
        assert listing.edits == 1 and "Página 1 de 2" in listing.text
        assert (
            sum(
                "callback_data" in b and b["callback_data"].startswith("env:")
                for b in listing.buttons()
            )
            == 8
        )
        await bot.press(ana, listing, "Próxima")
        assert "Página 2 de 2" in listing.text and listing.text.count("Contrato ") == 3
        await bot.press(ana, listing, "Vencendo")
        assert "Aditivo urgente" in listing.text and "faltam" in listing.text
        found = await bot.say(ana, "/envelopes joao")  # a signer's name, without the accent
        assert "(12)" in found.text and "Página 1 de 2" in found.text
        await bot.press(ana, found, "Próxima")  # the term is kept per user, not in the button
        assert "Busca: “joao”" in found.text and "Página 2 de 2" in found.text
        none = await bot.say(ana, "/envelopes <zzz>")
        assert "&lt;zzz&gt;" in none.html and "Nenhum envelope" in none.text
        await bot.press(ana, none, "Buscar")
        prompt = bot.last(ana)
        assert "termo de busca" in prompt.text
        typed = await bot.say(ana, "Aditivo")
        assert "Busca: “Aditivo”" in typed.text and "(1)" in typed.text


async def test_a_member_sees_only_the_envelopes_they_created(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    import_envelopes(
        sqlite_app,
        seeded.account.id,
        envelope_json("ENV-ADM", title="Do admin"),
        envelope_json("ENV-MEM", title="Do membro", created_by=seeded.member.id),
    )
    bruno = person(seeded.member)
    async with running_bot(sqlite_app) as bot:
        listing = await bot.say(bruno, "/envelopes")
        await bot.press(bruno, listing, "Rascunhos")
        assert "Do membro" in listing.text and "Do admin" not in listing.text
        assert "Do admin" not in (await bot.say(bruno, "/envelopes Do")).text


# Edits, sends and answers go through `do_api_request` without its "Please use" warning.
@pytest.mark.filterwarnings("error::telegram.warnings.PTBUserWarning")
async def test_the_card_shows_the_envelope_and_is_edited_in_place(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env = envelope_json(title="Contrato <de> locação & garagem", ordered=True)
    env["signers"][1]["order"] = 1
    env_id = import_envelopes(sqlite_app, seeded.account.id, env)["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        listing = await bot.say(ana, "/envelopes")
        await bot.tap(ana, listing, f"env:{env_id}")
        card = listing
        assert card.edits == 1 and len(bot.api.bot_messages(ana.id)) == 1
        assert "Informações do Envelope" in card.text
        assert "Contrato &lt;de&gt; locação &amp; garagem" in card.html
        assert "Status: rascunho" in card.text
        assert "Data de expiração: 10/12/2026 18:00" in card.text  # America/Sao_Paulo
        assert "contrato.pdf (4 pág.)" in card.text
        assert "1. Maria Souza: pendente" in card.text and "2. João Lima: pendente" in card.text
        assert "Créditos: 3 créditos" in card.text
        labels = [b["text"] for b in card.buttons()]
        assert labels[0] == "Lacrar (3 créditos)" and "Voltar" in labels
        # On the wire: HTML, and no link preview (a card's links must not unfurl).
        edit = next(p for name, p in bot.api.calls if name == "editmessagetext")
        assert edit["parse_mode"] == "HTML"
        assert edit["link_preview_options"] == {"is_disabled": True}
        answer = await bot.press(ana, card, "Atualizar")  # unchanged: "not modified" swallowed
        assert answer.text is None and card.edits == 1


# -- seal -----------------------------------------------------------------------------------------
# Edits, sends and answers go through `do_api_request` without its "Please use" warning.
@pytest.mark.filterwarnings("error::telegram.warnings.PTBUserWarning")
async def test_seal_shows_cost_and_balances_and_charges_once(app: App) -> None:
    seeded = seed_account(app, credits=10)
    env_id = import_envelopes(app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        card = await bot.card(ana, env_id)
        await bot.press(ana, card, "Lacrar")
        assert "Custo: 3 créditos" in card.text
        assert "Saldo de créditos: 40 → 37" in card.text
        confirm = card.button("Confirmar")["callback_data"]
        answer = await bot.press(ana, card, "Confirmar")
        assert answer.text == "Feito."
        assert "Envelope lacrado" in card.text and "Saldo de créditos: 37" in card.text
        assert "na fila por e-mail: 2" in card.text
        again = await bot.tap(ana, card, confirm)
        assert "já foi usada" in card.text and "Nada foi cobrado" in card.text
        assert again.text is None
    assert balances(app, seeded) == (37, 5)
    assert app.lacre.envelope(seeded.admin.id, env_id).status is EnvelopeStatus.PENDENTE
    with app.engine.connect() as conn:
        assert audit(conn) == []


async def test_not_enough_credits_says_how_many_are_missing_and_offers_planos(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app, plan="pessoa-fisica")
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json(credits=25))["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:seal")
        assert "Faltam 5 créditos" in card.text and "Nada foi cobrado" in card.text
        await bot.press(ana, card, "Planos")
        assert "Plano atual: Pessoa Física" in card.text
    assert balances(sqlite_app, seeded) == (20, 5)


async def test_a_confirmation_older_than_ten_minutes_charges_nothing(
    sqlite_app: App, clock: FixedClock
) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:seal")
        clock.advance(timedelta(minutes=10, seconds=1))
        await bot.press(ana, card, "Confirmar")
        assert "expirou" in card.text and "Nada foi cobrado" in card.text
        assert card.button("Informações do Envelope")["callback_data"] == f"env:{env_id}"
    assert balances(sqlite_app, seeded) == (40, 5)
    status = sqlite_app.lacre.envelope(seeded.admin.id, env_id).status
    assert status is EnvelopeStatus.RASCUNHO


async def test_a_changed_quote_charges_nothing_and_says_why(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:seal")
        import_envelopes(sqlite_app, seeded.account.id, envelope_json(credits=4))
        await bot.press(ana, card, "Confirmar")
        assert "O custo mudou de 3 para 4" in card.text and "Nada foi cobrado" in card.text
    assert balances(sqlite_app, seeded) == (40, 5)


async def test_declining_a_confirmation_returns_to_the_card_and_charges_nothing(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:seal")
        nonce = card.button("Confirmar")["callback_data"]
        answer = await bot.press(ana, card, "Cancelar")
        assert answer.text == "Cancelado. Nada foi feito."
        assert "Informações do Envelope" in card.text
        await bot.tap(ana, card, nonce)
        assert "já foi usada" in card.text
    assert balances(sqlite_app, seeded) == (40, 5)


async def test_block_unblock_and_cancel_each_state_their_rule_before_acting(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = pending_envelope(sqlite_app, seeded)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.card(ana, env_id)
        await bot.press(ana, card, "Bloquear Envelope")
        assert "não conseguem abrir" in card.text and "ninguém assinou" in card.text
        await bot.press(ana, card, "Confirmar")
        assert "Envelope bloqueado" in card.text
        await bot.tap(ana, card, f"env:{env_id}")
        assert "Status: bloqueado" in card.text
        assert card.buttons()[0]["text"] == "Desbloquear Envelope"
        await bot.press(ana, card, "Desbloquear Envelope")
        assert "recebe de novo" in card.text
        await bot.press(ana, card, "Confirmar")
        await bot.tap(ana, card, f"env:{env_id}:cancel")
        assert "irreversível" in card.text
        await bot.press(ana, card, "Confirmar")
        assert "Envelope cancelado" in card.text
        await bot.tap(ana, card, f"env:{env_id}")
        assert "Status: cancelado" in card.text
        assert [b["text"] for b in card.buttons()] == ["Atualizar", "Voltar"]
        answer = await bot.tap(ana, card, f"env:{env_id}:cancel")
        assert answer.show_alert and "cancelado" in (answer.text or "")
    assert balances(sqlite_app, seeded) == (37, 5)


async def test_block_is_refused_once_someone_signed(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = pending_envelope(sqlite_app, seeded)
    sqlite_app.lacre.record_signature("ENV-1001", "maria@example.com", seeded.account.id)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.card(ana, env_id)
        assert "Bloquear Envelope" not in [b["text"] for b in card.buttons()]
        answer = await bot.tap(ana, card, f"env:{env_id}:block")
        assert answer.show_alert and "já assinou" in (answer.text or "")
        assert "Maria Souza: assinado" in card.text
    env = sqlite_app.lacre.envelope(seeded.admin.id, env_id)
    assert env.status is EnvelopeStatus.PENDENTE


# -- resend ---------------------------------------------------------------------------------------
async def test_resend_by_email_to_all_pending_is_free_and_one_tap(
    sqlite_app: App, clock: FixedClock
) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = pending_envelope(sqlite_app, seeded)
    clock.advance(timedelta(minutes=5))  # past the cooldown of the seal's own e-mails
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:resend")
        assert "todos os pendentes" in card.text
        await bot.press(ana, card, "Todos os pendentes por e-mail (grátis)")
        receipt = bot.last(ana)
        assert "2 signatário(s)" in receipt.text
        answer = await bot.tap(ana, card, f"rsa:{env_id}")  # at once again: cooldown
        assert answer.show_alert and "pode ser notificado agora" in (answer.text or "")
    assert balances(sqlite_app, seeded) == (37, 5)


async def test_paid_resend_confirms_with_notification_credits_and_shows_the_outcome(
    app: App, clock: FixedClock
) -> None:
    seeded = seed_account(app, credits=10)
    env_id = pending_envelope(app, seeded)
    joao = signer_id(app, seeded, env_id, "joao@example.com")
    ana = person(seeded.admin)
    async with running_bot(app) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:resend")
        await bot.press(ana, card, "Maria Souza")
        labels = [b["text"] for b in card.buttons()]
        assert labels[:2] == [
            "SMS (1 crédito de notificação)",
            "WhatsApp (1 crédito de notificação)",
        ]
        assert "E-mail: aguarde" in card.text  # the seal's e-mail went out a moment ago
        await bot.press(ana, card, "SMS")
        confirmation = bot.last(ana)
        assert "Para: (11) 98765-4321" in confirmation.text
        assert "Saldo de créditos de notificação: 5 → 4" in confirmation.text
        await bot.press(ana, confirmation, "Confirmar")
        assert "SMS na fila para Maria Souza" in confirmation.text
        await bot.tap(ana, card, f"sg:{env_id}:{joao}")
        assert "SMS: sem telefone cadastrado" in card.text
        assert all("SMS" not in b["text"] for b in card.buttons())
        answer = await bot.tap(ana, card, f"rsc:{env_id}:{joao}:whatsapp")
        assert answer.show_alert and "sem telefone" in (answer.text or "").lower()
        sms = [n for n in _notifications(app, env_id) if n.channel is Channel.SMS]
        with app.uow() as uow:
            uow.notifications.set_status(sms[0].id, DeliveryStatus.FAILED, clock.now())
            uow.commit()
        app.lacre.refund(sms[0].id)
        await bot.tap(ana, card, f"env:{env_id}")
        assert "Maria Souza: pendente · SMS falhou, crédito devolvido" in card.text
    assert balances(app, seeded) == (37, 5)
    with app.engine.connect() as conn:
        assert audit(conn) == []


async def test_not_enough_notification_credits_for_sms_offers_planos(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    env_id = pending_envelope(sqlite_app, seeded)
    maria = signer_id(sqlite_app, seeded, env_id, "maria@example.com")
    for i in range(5):
        sqlite_app.lacre.charge(
            seeded.account.id,
            Pool.NOTIFICATION,
            1,
            Reason.SMS,
            f"spent:{i}",
            actor_user_id=seeded.admin.id,
        )
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        anchor = await bot.say(ana, "/envelopes")
        await bot.tap(ana, anchor, f"rsc:{env_id}:{maria}:sms")
        refusal = bot.last(ana)
        assert "Faltam 1 crédito de notificação" in refusal.text
        assert refusal.button("Planos")["callback_data"] == "pl"
    assert balances(sqlite_app, seeded) == (37, 0)


# -- balances, plans, history, language, errors --------------------------------------------
async def test_saldo_planos_and_historico(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, plan="pessoa-fisica", credits=12)
    pending_envelope(sqlite_app, seeded)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        saldo = await bot.say(ana, "/saldo")
        assert "Créditos: 29" in saldo.text and "Créditos de notificação: 5" in saldo.text
        assert "Plano: Pessoa Física" in saldo.text and "Renovação: 27/12/2026" in saldo.text
        assert "não cumulativos" in saldo.text and "expiram na renovação" in saldo.text
        planos = await bot.say(ana, "/plans")
        buy = planos.button("Adquirir 10 créditos de notificação")
        assert buy["url"].endswith(f"account={seeded.account.id}&item=notif-10")
        assert planos.button("Trocar de plano: Profissional")["url"].endswith("item=profissional")
        historico = await bot.say(ana, "/historico")
        assert "−3</b> créditos · lacre de envelope" in historico.html
        assert "ENV-1001 · Contrato de locação" in historico.text


async def test_historico_pages_newest_first(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    for i in range(12):
        sqlite_app.lacre.grant(seeded.account.id, credits=i + 1, idempotency_key=f"g{i}")
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        page = await bot.say(ana, "/historico")
        assert "página 1 de 2" in page.text and "+12" in page.text
        await bot.press(ana, page, "Próxima")
        assert "página 2 de 2" in page.text and "+1</b>" in page.html


async def test_idioma_switches_every_text_and_menus_exist_per_language(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app, credits=1)
    ana = person(seeded.admin, language="es-419")
    async with running_bot(sqlite_app) as bot:
        assert "Saldo" in (await bot.say(ana, "/saldo")).text
        assert "créditos de notificación" in bot.last(ana).text.lower()
        chooser = await bot.say(ana, "/idioma")
        await bot.press(ana, chooser, "English")
        assert chooser.text == "Language set: English."
        assert "Notification credits" in (await bot.say(ana, "/balance")).text
        assert [c["command"] for c in bot.api.commands[("default", "en")]][1] == "balance"
        assert bot.api.commands[("default", "")][1]["description"].startswith("Créditos")
        assert bot.api.commands[("default", "es")][0]["description"].startswith("Sobres")
    with sqlite_app.uow(write=False) as uow:
        stored = uow.users.get(seeded.admin.id)
        assert stored is not None and stored.language == "en"


async def test_a_handler_failure_is_logged_with_an_id_the_user_sees(
    sqlite_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        listing = await bot.say(ana, "/envelopes")
        bot.api.fail_next("editMessageText", 400, "Bad Request: message to edit not found")
        answer = await bot.press(ana, listing, "Rascunhos")
        assert answer.show_alert and "código" in (answer.text or "")
        error_id = (answer.text or "").rstrip(".").split()[-1]
        assert f"[error {error_id}]" in caplog.text
        assert "Traceback" not in (answer.text or "")


async def test_a_user_who_blocked_the_bot_is_marked_and_cleared_when_back(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        bot.api.block(ana.id)
        bot.api.send_text(ana, "/saldo")
        browse = bot.application.bot_data["lacre.services"].browse
        await bot.api.wait_for(lambda: browse.is_blocked(ana.id))
        sends = bot.api.count("sendMessage")
        assert sends == 1  # the reply that got 403; the error handler did not retry
        bot.api.unblock(ana.id)
        assert "Saldo" in (await bot.say(ana, "/saldo")).text
        assert not browse.is_blocked(ana.id)


async def test_a_403_in_a_group_does_not_mark_the_user_who_wrote_there(
    sqlite_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """The bot was removed from a group: its "talk in private" answer there gets a 403. That
    says nothing of Ana, whose reminders and notices must still reach her in private."""
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    caplog.set_level(logging.INFO, logger="bot")
    async with running_bot(sqlite_app) as bot:
        browse = bot.application.bot_data["lacre.services"].browse
        bot.api.fail_next("sendMessage", 403, "Forbidden: bot was kicked from the group chat")
        bot.api.send_text(ana, "/saldo", chat_id=-100123, chat_type="supergroup")
        await bot.api.wait_for(lambda: "nobody marked" in caplog.text)
        assert bot.api.count("sendMessage") == 1  # the answer that got 403, not retried
        assert not browse.is_blocked(ana.id)
        assert "Saldo" in (await bot.say(ana, "/saldo")).text


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_from_telegram_is_waited_out_by_the_rate_limiter(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app, rate_limiter=AIORateLimiter(max_retries=1)) as bot:
        bot.api.fail_next("sendMessage", 429, retry_after=1)
        reply = await bot.say(ana, "/saldo")
        assert "Saldo" in reply.text
        assert bot.api.count("sendMessage") == 2


async def test_unknown_commands_are_answered(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    async with running_bot(sqlite_app) as bot:
        assert "Não conheço" in (await bot.say(ana, "/nada")).text
        assert "/envelopes" in (await bot.say(ana, "/ajuda")).text


async def test_every_kind_of_update_reaches_its_handler_with_the_schedulers_too(
    sqlite_app: App,
) -> None:
    """Registered as `lacre run` does, scheduler handlers included: taps are matched before
    messages, so what decides is the order within each kind (`lang:` before the bot's
    prefixes, the scheduler's buttons before the catch-all, its command before "unknown")."""
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    env_id = pending_envelope(sqlite_app, seeded, "ENV-1")
    async with running_bot(sqlite_app, extra_handlers=scheduler_handlers(sqlite_app)) as bot:
        page = await bot.say(ana, "/lembretes")
        assert "Lembretes de prazo" in page.text
        assert "Não conheço" in (await bot.say(ana, "/nada")).text
        listing = await bot.say(ana, "/envelopes")
        assert "ENV-1" in listing.text
        answer = await bot.tap(ana, page, f"mute:{env_id}")
        assert answer.text == "🔕 Não vou mais lembrar deste envelope."
        answer = await bot.tap(ana, listing, "zzz")
        assert answer.show_alert and answer.text == (
            "Este botão não é válido ou ficou antigo. Nada foi feito."
        )
        await bot.tap(ana, listing, "lang:es")
        assert bot.last(ana).text == "Idioma definido: Español."
        assert "No conozco ese comando" in (await bot.say(ana, "/nada")).text
    assert rows(sqlite_app, "SELECT envelope_id FROM reminder_mutes") == [(env_id,)]


def _notifications(app: App, env_id: int) -> list[Notification]:
    with app.uow(write=False) as uow:
        return uow.notifications.for_envelope(env_id)
