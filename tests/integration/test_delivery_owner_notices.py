"""Owner notices in Telegram: the real python-telegram-bot against the fake Bot API server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from telegram import Bot

from bot.bootstrap import App
from bot.delivery.owner_notices import TelegramMessenger
from bot.delivery.worker import OutboxWorker
from bot.sandbox.bot_api import DEFAULT_TOKEN, BotApiServer, FakeBotApi, FakeUser
from bot.sandbox.twilio_api import TwilioApiServer
from core.accounts import Role
from core.browse import Browse
from core.notifications import Channel, DeliveryStatus
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory
from tests.support.builders import linked_user
from tests.support.delivery import (
    MARIA,
    assert_audit_clean,
    no_retry_waits,
    row,
    sealed_envelope,
    twilio,
    twilio_sender,
)

__all__ = ["no_retry_waits", "twilio"]  # fixtures used by name


@dataclass
class Telegram:
    api: FakeBotApi
    bot: Bot


@pytest.fixture
async def telegram() -> AsyncIterator[Telegram]:
    api = FakeBotApi()
    server = BotApiServer(api)
    await server.start()
    bot = Bot(DEFAULT_TOKEN, base_url=server.base_url)
    try:
        async with bot:
            yield Telegram(api, bot)
    finally:
        await server.stop()


async def send_and_report(app: App, twilio: TwilioApiServer, telegram: Telegram) -> None:
    """The outbox worker's two passes: send to the fake Twilio, then tell the owners."""
    sender = twilio_sender(twilio, "https://lacre.example.com")
    work = OutboxWorker(
        outbox=SqlOutbox(SqlUnitOfWorkFactory(app.engine)),
        lacre=app.lacre,
        clock=app.clock,
        messages=sender,
        messenger=TelegramMessenger(telegram.bot),
    )
    try:
        await work.run_once()
        await work.run_once()
    finally:
        await sender.close()


async def test_a_notice_reaches_the_owner_as_html(telegram: Telegram) -> None:
    owner = FakeUser(501)
    telegram.api.send_text(owner, "/start")

    assert await TelegramMessenger(telegram.bot).send(owner.id, "<b>Olá</b> &amp; até") is True

    last = telegram.api.last_bot_message(owner.id)
    assert last.html == "<b>Olá</b> &amp; até"
    assert last.text == "Olá & até"


async def test_an_owner_who_blocked_the_bot_is_reported_and_nothing_is_retried(
    telegram: Telegram,
) -> None:
    owner = FakeUser(502)
    telegram.api.send_text(owner, "/start")
    telegram.api.block(owner.id)
    blocked: list[int] = []

    async def on_blocked(telegram_user_id: int) -> None:
        blocked.append(telegram_user_id)

    sent = await TelegramMessenger(telegram.bot, on_blocked).send(owner.id, "oi")

    assert sent is False
    assert blocked == [owner.id]
    assert telegram.api.count("sendMessage") == 1


async def test_a_flood_limit_is_waited_out_once_and_then_given_up(telegram: Telegram) -> None:
    owner = FakeUser(503)
    telegram.api.send_text(owner, "/start")
    messenger = TelegramMessenger(telegram.bot)

    telegram.api.fail_next("sendMessage", 429, retry_after=1)
    assert await messenger.send(owner.id, "primeira") is True
    assert telegram.api.last_bot_message(owner.id).text == "primeira"

    telegram.api.fail_next("sendMessage", 429, retry_after=1, times=2)
    assert await messenger.send(owner.id, "segunda") is False
    assert telegram.api.last_bot_message(owner.id).text == "primeira"


async def test_a_refused_sms_is_reported_in_the_owners_telegram_chat(
    app: App, twilio: TwilioApiServer, telegram: Telegram
) -> None:
    sealed = sealed_envelope(app)
    owner = FakeUser(sealed.seeded.admin.telegram_user_id or 0)
    telegram.api.send_text(owner, "/start")
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    twilio.api.refuse_number(MARIA, 21614)
    await send_and_report(app, twilio, telegram)

    assert row(app, sent.notification.id).status is DeliveryStatus.FAILED
    [notice] = telegram.api.bot_messages(owner.id)
    assert "A requisição de assinatura não foi entregue" in notice.text
    assert "Signatário: Maria Souza ((11) 98765-4321)" in notice.text
    assert "Motivo: o número não é de celular" in notice.text
    assert "1 crédito de notificação foi devolvido" in notice.text
    assert "<b>Contrato de locação</b>" in notice.html
    assert_audit_clean(app)


async def test_an_owner_who_blocked_the_bot_is_not_told_again_the_other_admins_are(
    app: App, twilio: TwilioApiServer, telegram: Telegram
) -> None:
    """The admin who asked for the SMS blocked the bot (marked after a 403): the failure goes
    to the account's other admin, in the language she chose with /idioma, and not to him."""
    sealed = sealed_envelope(app)
    asker = FakeUser(sealed.seeded.admin.telegram_user_id or 0)
    carla = linked_user(app, sealed.seeded.account.id, Role.ADMIN, "Carla Admin")
    other = FakeUser(carla.telegram_user_id or 0)
    for person in (asker, other):
        telegram.api.send_text(person, "/start")
    browse = Browse(app.uow, app.lacre, app.clock, app.lacre.catalogue)  # type: ignore[arg-type]
    browse.set_language(other.id, "en")
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    assert browse.mark_blocked(asker.id) is True
    twilio.api.refuse_number(MARIA, 21614)
    await send_and_report(app, twilio, telegram)

    assert row(app, sent.notification.id).status is DeliveryStatus.FAILED
    assert telegram.api.bot_messages(asker.id) == []
    [notice] = telegram.api.bot_messages(other.id)
    assert "The signature request was not delivered" in notice.text
    assert "Maria Souza" in notice.text
    assert_audit_clean(app)
