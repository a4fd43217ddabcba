"""Every message the running bot sends or edits is Telegram HTML without a link preview, on
every path that sends (decision 0012: the application has no `Defaults`, each sender says so):
command replies, edits in place, the error notice, the scheduler's page, its mute edit and its
nudges. Read off what the fake Bot API received over HTTP."""

from __future__ import annotations

from typing import Any

from bot.bootstrap import App
from bot.scheduler.handlers import handlers as scheduler_handlers
from tests.support.bot_flows import person
from tests.support.bot_harness import running_bot
from tests.support.builders import seed_account
from tests.support.scheduler import due_in_three_days, tick_three_days_before

SENDS = ("sendmessage", "editmessagetext")


async def test_every_message_on_every_path_is_html_without_a_link_preview(
    sqlite_app: App,
) -> None:
    seeded = seed_account(sqlite_app)
    ana = person(seeded.admin)
    env_id = due_in_three_days(sqlite_app, seeded)
    async with running_bot(sqlite_app, extra_handlers=scheduler_handlers(sqlite_app)) as bot:
        listing = await bot.say(ana, "/envelopes")  # a command's reply
        await bot.tap(ana, listing, f"env:{env_id}")  # an edit in place
        bot.api.fail_next("sendMessage", 400, "Bad Request: chat not found")
        error = await bot.say(ana, "/saldo")  # the error notice after a failed reply
        assert "informe ao suporte o código" in error.text
        page = await bot.say(ana, "/lembretes")  # the scheduler's own reply
        assert page.buttons()
        report = await tick_three_days_before(sqlite_app, bot.application.bot)
        assert report.sent == 1  # a nudge from the pacer
        nudge = bot.last(ana)
        await bot.press(ana, nudge, "Não lembrar mais")  # the scheduler's edit
        await bot.api.wait_for(lambda: nudge.edits == 1)
        calls: list[tuple[str, dict[str, Any]]] = [c for c in bot.api.calls if c[0] in SENDS]
    texts = [p["text"] for _, p in calls]
    for needle in ("Envelopes", "Informações do Envelope", "suporte", "Lembretes", "Prazo"):
        assert any(needle in text for text in texts), needle  # each path was on the wire
    assert [name for name, _ in calls].count("editmessagetext") == 2
    for name, params in calls:
        assert params.get("parse_mode") == "HTML", (name, params["text"][:40])
        assert params.get("link_preview_options") == {"is_disabled": True}, name
