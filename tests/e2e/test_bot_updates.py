"""What the running bot keeps of a tap (bot.telegram.updates), through the real Application
polling the fake Bot API over HTTP: its own buttons arrive without the message under them and
still edit that message in place; the scheduler's "Não lembrar mais" still reads the reminder
it rewrites."""

from __future__ import annotations

from typing import Any

from telegram import Message, Update
from telegram.ext import ContextTypes, TypeHandler

from bot.bootstrap import App
from bot.scheduler.handlers import handlers as scheduler_handlers
from bot.telegram.updates import Origin, origin
from tests.support.bot_flows import pending_envelope, person
from tests.support.bot_harness import running_bot
from tests.support.builders import seed_account
from tests.support.scheduler import due_in_three_days, rows, tick_three_days_before


def taps_seen(application: Any) -> list[tuple[Message | None, Origin | None]]:
    """Every tap's message and origin, as the handlers receive them (recorded before them)."""
    seen: list[tuple[Message | None, Origin | None]] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            message = update.callback_query.message
            seen.append((message if isinstance(message, Message) else None, origin(update)))

    application.add_handler(TypeHandler(Update, record), group=-1)
    return seen


async def test_the_bots_own_buttons_arrive_without_the_message_and_still_edit_it(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app, credits=10)
    ana = person(seeded.admin)
    env_id = pending_envelope(sqlite_app, seeded, "ENV-1")
    async with running_bot(sqlite_app) as bot:
        seen = taps_seen(bot.application)
        listing = await bot.say(ana, "/envelopes")
        assert listing.reply_markup  # the keyboard Telegram sends back with every tap
        await bot.tap(ana, listing, f"env:{env_id}")
        card = bot.last(ana)
        assert card.message_id == listing.message_id and card.edits == 1
        assert "Informações do Envelope" in card.text
        await bot.tap(ana, card, "ls:pen:0")
        assert bot.last(ana).edits == 2 and "ENV-1" in bot.last(ana).text
    assert seen == [(None, Origin(ana.id, "private", listing.message_id))] * 2


async def test_a_tap_under_a_message_the_bot_can_no_longer_reach_is_answered_anew(
    sqlite_app: App,
) -> None:
    """Telegram sends `date` 0 for a message too old for the bot to reach: nothing to edit, so
    the card comes as a new message and the tap is still answered."""
    seeded = seed_account(sqlite_app, credits=10)
    ana = person(seeded.admin)
    env_id = pending_envelope(sqlite_app, seeded, "ENV-1")
    async with running_bot(sqlite_app) as bot:
        seen = taps_seen(bot.application)
        listing = await bot.say(ana, "/envelopes")
        listing.date = 0  # as Telegram describes a message it no longer lets the bot reach
        answer = await bot.tap(ana, listing, f"env:{env_id}")
        assert answer.text is None and not answer.show_alert
        card = bot.last(ana)
        assert card.message_id != listing.message_id and listing.edits == 0
        assert "Informações do Envelope" in card.text
    assert seen == [(None, Origin(ana.id, "private", None))]


async def test_mute_still_reads_the_reminder_it_rewrites(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    env_id = due_in_three_days(sqlite_app, seeded)
    async with running_bot(sqlite_app, extra_handlers=scheduler_handlers(sqlite_app)) as bot:
        seen = taps_seen(bot.application)
        await bot.say(ana, "/ajuda")  # Telegram knows a chat once they wrote
        report = await tick_three_days_before(sqlite_app, bot.application.bot)
        assert (report.nudges, report.sent) == (1, 1)
        nudge = bot.last(ana)
        reminder = nudge.text  # the fake Bot API edits its messages in place
        assert "Prazo se aproximando" in reminder
        buttons = [b["callback_data"] for b in nudge.buttons()]
        assert f"mute:{env_id}" in buttons
        answer = await bot.press(ana, nudge, "Não lembrar mais")
        assert answer.text == "🔕 Não vou mais lembrar deste envelope."
        await bot.api.wait_for(lambda: nudge.edits == 1)  # answered first, then edited
        edited = bot.last(ana)
        assert edited.message_id == nudge.message_id
        assert edited.text == f"{reminder}\n\n🔕 Lembretes desligados para este envelope."
        # The reminder's own keyboard, read from the tapped message, less the mute button.
        assert [b["callback_data"] for b in edited.buttons()] == [
            data for data in buttons if data != f"mute:{env_id}"
        ]
    assert len(seen) == 1
    message, where = seen[0]
    assert message is not None and message.text == reminder and message.reply_markup is not None
    assert where == Origin(ana.id, "private", nudge.message_id)
    assert rows(sqlite_app, "SELECT envelope_id FROM reminder_mutes") == [(env_id,)]
