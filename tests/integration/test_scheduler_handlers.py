"""/lembretes and "Não lembrar mais" through a real python-telegram-bot Application, over HTTP,
against the sandbox's fake Bot API; nudges delivered by a real tick through the pacer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ApplicationBuilder

from bot.bootstrap import App
from bot.sandbox.bot_api import DEFAULT_TOKEN, BotApiServer, ChatMessage, FakeBotApi, FakeUser
from bot.scheduler.handlers import handlers
from bot.scheduler.pacer import Pacer
from bot.scheduler.tick import Tick
from core.clock import FixedClock
from core.reminders import DAY, Reminders
from tests.support.builders import Seeded, seed_account
from tests.support.scheduler import due_in_three_days, rows, tick_three_days_before


@dataclass
class Chat:
    api: FakeBotApi
    application: Application[Any, Any, Any, Any, Any, Any]
    app: App

    async def deliver(self) -> None:
        """Hand every pending update to the application, as polling would."""
        updates = await self.application.bot.get_updates(timeout=0)
        for update in updates:
            await self.application.process_update(update)
        if updates:
            await self.application.bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)

    async def say(self, user: FakeUser, text: str, **kwargs: Any) -> ChatMessage:
        self.api.send_text(user, text, **kwargs)
        await self.deliver()
        return self.api.last_bot_message(kwargs.get("chat_id", user.id))

    async def tap(self, user: FakeUser, message: ChatMessage, data: str) -> Any:
        query_id = self.api.tap(user, message, data)
        await self.deliver()
        return self.api.answer_for(query_id)


@pytest.fixture
async def chat(sqlite_app: App) -> AsyncIterator[Chat]:
    api = FakeBotApi()
    server = BotApiServer(api)
    await server.start()
    application = (
        ApplicationBuilder().token(DEFAULT_TOKEN).base_url(server.base_url).updater(None).build()
    )
    for handler in handlers(sqlite_app):
        application.add_handler(handler)
    await application.initialize()
    try:
        yield Chat(api, application, sqlite_app)
    finally:
        await application.shutdown()
        await server.stop()


def person(user: Any) -> FakeUser:
    return FakeUser(user.telegram_user_id, user.name)


def settings_rows(app: App) -> list[Any]:
    return rows(app, "SELECT enabled, offsets FROM reminder_settings")


async def test_an_admin_sees_the_policy_and_changes_it_in_place(chat: Chat) -> None:
    seeded = seed_account(chat.app)
    admin = person(seeded.admin)
    page = await chat.say(admin, "/lembretes")
    assert "Lembretes de prazo" in page.text and "Situação: ligados" in page.text
    assert "Avisar antes do prazo: 3 dias, 1 dia, 2 horas" in page.text
    assert "20:00–08:00 (America/Sao_Paulo)" in page.text
    assert all(len(b["callback_data"].encode()) <= 64 for b in page.buttons())
    answer = await chat.tap(admin, page, page.button("1 semana")["callback_data"])
    assert answer is not None and answer.text == "Salvo."
    edited = chat.api.last_bot_message(admin.id)
    assert edited.message_id == page.message_id and edited.edits == 1
    assert "1 semana, 3 dias, 1 dia, 2 horas" in edited.text
    assert settings_rows(chat.app) == [(True, "604800,259200,86400,7200")]
    await chat.tap(admin, edited, edited.button("Desligar")["callback_data"])
    assert "Situação: desligados" in chat.api.last_bot_message(admin.id).text
    assert [bool(r[0]) for r in settings_rows(chat.app)] == [False]


async def test_an_english_speaker_gets_reminders_in_english(chat: Chat) -> None:
    seeded = seed_account(chat.app)
    admin = FakeUser(seeded.admin.telegram_user_id or 0, "Ana", language_code="en")
    page = await chat.say(admin, "/reminders")
    assert "Deadline reminders" in page.text and "3 days, 1 day, 2 hours" in page.text


async def test_a_member_sees_the_policy_but_a_forged_tap_changes_nothing(chat: Chat) -> None:
    seeded = seed_account(chat.app)
    member = person(seeded.member)
    page = await chat.say(member, "/lembretes")
    assert "Só administradores" in page.text and page.buttons() == []
    answer = await chat.tap(member, page, "rem:off")
    assert answer is not None and answer.show_alert and "Só administradores" in (answer.text or "")
    assert settings_rows(chat.app) == []


async def test_malformed_setting_buttons_are_refused_and_change_nothing(chat: Chat) -> None:
    seeded = seed_account(chat.app)
    admin = person(seeded.admin)
    page = await chat.say(admin, "/lembretes")
    for data in ("rem:o:5:1", "rem:a:5", "rem:q:9", "rem:t:4", "rem:nope"):
        answer = await chat.tap(admin, page, data)
        assert answer is not None and "não é mais válido" in (answer.text or ""), data
    for seconds in (259200, 86400):
        await chat.tap(admin, page, f"rem:o:{seconds}:0")
    answer = await chat.tap(admin, page, "rem:o:7200:0")  # the last one left
    assert answer is not None and "pelo menos um aviso" in (answer.text or "")
    assert settings_rows(chat.app) == [(True, "7200")]


async def test_strangers_and_groups_get_only_an_explanation(chat: Chat) -> None:
    stranger = FakeUser(424242, "Zé")
    reply = await chat.say(stranger, "/lembretes")
    assert "Vincule sua conta" in reply.text
    seeded = seed_account(chat.app)
    reply = await chat.say(person(seeded.admin), "/lembretes", chat_id=-100123, chat_type="group")
    assert reply.text == "Fale comigo no privado."
    assert settings_rows(chat.app) == []


async def nudge(chat: Chat, seeded: Seeded) -> int:
    """Import a pending envelope and let a real tick deliver its 3-day nudge."""
    env_id = due_in_three_days(chat.app, seeded)
    chat.api.send_text(person(seeded.admin), "oi")  # Telegram knows a chat once they wrote
    await chat.deliver()
    report = await tick_three_days_before(chat.app, chat.application.bot)
    assert (report.nudges, report.sent) == (1, 1)
    return env_id


async def test_mute_from_a_delivered_nudge_stops_reminders_and_drops_the_button(
    chat: Chat,
) -> None:
    seeded = seed_account(chat.app)
    admin = person(seeded.admin)
    env_id = await nudge(chat, seeded)
    message = chat.api.last_bot_message(admin.id)
    assert "Prazo se aproximando" in message.text
    answer = await chat.tap(admin, message, message.button("Não lembrar mais")["callback_data"])
    assert answer is not None and answer.text == "🔕 Não vou mais lembrar deste envelope."
    edited = chat.api.last_bot_message(admin.id)
    assert edited.text.endswith("🔕 Lembretes desligados para este envelope.")
    assert [b["callback_data"] for b in edited.buttons()][-1] == f"env:{env_id}"
    again = await chat.tap(admin, edited, f"mute:{env_id}")
    assert again is not None and again.text == "Este envelope já estava silenciado."
    assert rows(chat.app, "SELECT envelope_id FROM reminder_mutes") == [(env_id,)]
    clock = chat.app.clock
    assert isinstance(clock, FixedClock)
    clock.advance(2 * DAY)  # the 1-day slot
    reminders = Reminders(chat.app.lacre, chat.app.uow, clock)  # type: ignore[arg-type]
    report = await Tick(reminders, Pacer(chat.application.bot))()
    assert report.messages == 0


async def test_muting_someone_elses_envelope_is_not_found_and_changes_nothing(chat: Chat) -> None:
    seeded = seed_account(chat.app)
    env_id = await nudge(chat, seeded)
    other = seed_account(chat.app, name="Outra")
    intruder = person(other.admin)
    own = await chat.say(intruder, "/lembretes")
    answer = await chat.tap(intruder, own, f"mute:{env_id}")
    assert answer is not None and answer.show_alert and answer.text == "Envelope não encontrado."
    member = person(seeded.member)  # same account, but not the creator and not an admin
    mine = await chat.say(member, "/lembretes")
    answer = await chat.tap(member, mine, f"mute:{env_id}")
    assert answer is not None and answer.text == "Envelope não encontrado."
    answer = await chat.tap(member, mine, "mute:01")
    assert answer is not None and "não é mais válido" in (answer.text or "")
    assert rows(chat.app, "SELECT count(*) FROM reminder_mutes") == [(0,)]


def test_the_handlers_can_be_built_before_the_app_and_ignore_other_updates() -> None:
    built = handlers()  # the App is then read from application.bot_data["app"]
    assert len(built) == 3
    assert all(h.check_update(Update(1)) in (None, False) for h in built)
