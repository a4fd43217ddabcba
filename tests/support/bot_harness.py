"""The real python-telegram-bot Application over real HTTP against the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telegram.request import HTTPXRequest

from bot.bootstrap import App
from bot.sandbox.bot_api import BotApiServer, CallbackAnswer, ChatMessage, FakeBotApi, FakeUser
from bot.telegram.app import AnyApplication, build_application


@dataclass
class BotHarness:
    api: FakeBotApi
    app: App
    application: AnyApplication
    base_url: str

    async def say(self, user: FakeUser, text: str, **chat: Any) -> ChatMessage:
        """Send `text` as `user`; return the bot's next new message in that chat."""
        chat_id = chat.get("chat_id", user.id)
        before = len(self.api.bot_messages(chat_id))
        self.api.send_text(user, text, **chat)
        await self.api.wait_for(lambda: len(self.api.bot_messages(chat_id)) > before)
        return self.api.bot_messages(chat_id)[before]

    async def tap(self, user: FakeUser, message: ChatMessage, data: str) -> CallbackAnswer:
        """Tap a button with `data` (real or forged) and wait for the answer."""
        return await self.api.answered(self.api.tap(user, message, data))

    async def press(self, user: FakeUser, message: ChatMessage, label: str) -> CallbackAnswer:
        return await self.api.answered(self.api.press(user, message, label))

    async def card(self, user: FakeUser, envelope_id: int) -> ChatMessage:
        """/envelopes, then the envelope's card, edited into that same message."""
        message = await self.say(user, "/envelopes")
        await self.tap(user, message, f"env:{envelope_id}")
        return message

    def last(self, user: FakeUser) -> ChatMessage:
        return self.api.last_bot_message(user.id)


@asynccontextmanager
async def running_bot(app: App, **options: Any) -> AsyncIterator[BotHarness]:
    """Serve a fake Bot API on 127.0.0.1, run the bot polling it, stop both afterwards."""
    api = FakeBotApi()
    server = BotApiServer(api)
    await server.start()
    application = build_application(
        app,
        base_url=server.base_url,
        token=api.token,
        request=HTTPXRequest(connection_pool_size=8),
        get_updates_request=HTTPXRequest(read_timeout=5),
        **options,
    )
    await application.initialize()
    # post_init runs only inside run_polling(); a custom loop calls it itself.
    assert application.post_init is not None
    await application.post_init(application)
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield BotHarness(api, app, application, server.base_url)
    finally:
        api.close()
        await application.updater.stop()
        await application.stop()
        await application.shutdown()
        await server.stop()
