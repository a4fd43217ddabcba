"""The Telegram application: every handler registered here, in order, plus errors and commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from telegram import BotCommand
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.bootstrap import App
from bot.i18n import t
from bot.telegram import handlers as h
from bot.telegram.callbacks import PREFIX_PATTERN
from bot.telegram.counts import TtlCountCache
from bot.telegram.updates import SlimUpdates
from core.browse import Browse, ChatsUnitOfWorkFactory
from core.confirmations import Confirmations, ConfirmationsUnitOfWorkFactory

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

# (pt-BR name, English alias); the pt-BR and es menus list the first, the en menu the second.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("envelopes", "envelopes"),
    ("saldo", "balance"),
    ("planos", "plans"),
    ("historico", "history"),
    ("lembretes", "reminders"),
    ("idioma", "language"),
    ("ajuda", "help"),
    ("desvincular", "unlink"),
)


def build_application(
    app: App,
    *,
    base_url: str,
    token: str,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    extra_handlers: Sequence[BaseHandler[Any, Any, Any]] = (),
    concurrent_updates: bool | int = False,
    browse: Browse | None = None,
    confirmations: Confirmations | None = None,
    threaded: bool | None = None,
) -> AnyApplication:
    """The bot over `app`'s use cases; `extra_handlers` (e.g. the scheduler's) go before the
    catch-alls. Transport, rate limiter and use cases can be replaced by keyword.

    `post_init` (the command menus) runs inside `run_polling()`/`run_webhook()`; a runner that
    drives `initialize()`/`start()` itself calls `await application.post_init(application)`.
    `threaded=None` runs use cases in worker threads except on SQLite. The getUpdates
    transport (python-telegram-bot's own default if none is given) is wrapped in
    `SlimUpdates`: taps on the bot's buttons are parsed without the message under them."""
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .concurrent_updates(concurrent_updates)
        .post_init(set_commands)
        # As python-telegram-bot builds its getUpdates transport when none is given.
        .get_updates_request(
            SlimUpdates(get_updates_request or HTTPXRequest(connection_pool_size=1))
        )
    )
    if request is not None:
        builder = builder.request(request)
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter)
    application: AnyApplication = builder.build()
    # The SQL unit of work carries the bot's repositories too (storage/uow.py).
    bot_uow = cast(ChatsUnitOfWorkFactory, app.uow)
    application.bot_data[h.SERVICES_KEY] = h.BotServices(
        lacre=app.lacre,
        browse=browse
        or Browse(bot_uow, app.lacre, app.clock, app.lacre.catalogue, TtlCountCache()),
        confirmations=confirmations
        or Confirmations(cast(ConfirmationsUnitOfWorkFactory, app.uow), app.lacre, app.clock),
        payment_url_template=app.settings.payment_url_template,
        threaded=app.engine.dialect.name != "sqlite" if threaded is None else threaded,
    )
    register(application, extra_handlers)
    return application


def register(
    application: AnyApplication, extra_handlers: Sequence[BaseHandler[Any, Any, Any]] = ()
) -> None:
    """All handlers, in order: the first that matches an update handles it.

    Button handlers come first: a tap is most updates, and message and command handlers never
    match one (their filters need a message update), so a tap skips ten checks. Within
    each kind the order is the one that decides: `lang:` before the button prefixes, the
    extra handlers before the catch-alls."""
    private = filters.ChatType.PRIVATE
    extra_taps = [x for x in extra_handlers if isinstance(x, CallbackQueryHandler)]
    extra_messages = [x for x in extra_handlers if not isinstance(x, CallbackQueryHandler)]
    application.add_handlers(
        [
            CallbackQueryHandler(h.language_button, pattern=r"^lang:"),
            CallbackQueryHandler(h.button, pattern=PREFIX_PATTERN),
            *extra_taps,
            CallbackQueryHandler(h.stale_button),
            # Groups see nothing of an account; commands there get "fale comigo no privado".
            MessageHandler(filters.ChatType.GROUPS, h.group_message),
            CommandHandler("start", h.start, filters=private),
            CommandHandler("envelopes", h.envelopes, filters=private),
            CommandHandler(["saldo", "balance"], h.balance, filters=private),
            CommandHandler(["planos", "plans"], h.plans, filters=private),
            CommandHandler(["historico", "history"], h.history, filters=private),
            CommandHandler(["idioma", "language"], h.language, filters=private),
            CommandHandler(["ajuda", "help"], h.help_command, filters=private),
            CommandHandler(["desvincular", "unlink"], h.unlink, filters=private),
            *extra_messages,
            MessageHandler(filters.COMMAND & private, h.unknown_command),
            MessageHandler(filters.TEXT & ~filters.COMMAND & private, h.search_text),
        ]
    )
    application.add_error_handler(h.on_error)


async def set_commands(application: AnyApplication) -> None:
    """The command menu in pt-BR (default), English and Spanish."""
    bot = application.bot
    for language, code, column in (("pt-BR", None, 0), ("en", "en", 1), ("es", "es", 0)):
        commands = [BotCommand(names[column], t(f"cmd.{names[0]}", language)) for names in COMMANDS]
        await bot.set_my_commands(commands, language_code=code)
