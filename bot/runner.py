"""`lacre run`: the bot, the HTTP app, the outbox worker and the scheduler in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from starlette.routing import BaseRoute
from telegram.ext import AIORateLimiter
from telegram.request import BaseRequest

from bot.bootstrap import App, bootstrap
from bot.delivery.email import SmtpEmailSender
from bot.delivery.owner_notices import TelegramMessenger
from bot.delivery.ports import EmailSending, MessageSending
from bot.delivery.twilio_sender import TwilioSender
from bot.delivery.worker import OutboxWorker
from bot.http.app import TwilioStatusConfig, build_http_app
from bot.http.server import HttpServer
from bot.http.telegram_webhook import WEBHOOK_PATH, telegram_webhook_route
from bot.scheduler.handlers import handlers as scheduler_handlers
from bot.scheduler.service import SchedulerService, build_scheduler
from bot.settings import Settings
from bot.telegram.app import AnyApplication, build_application
from bot.telegram.handlers import SERVICES_KEY, BotServices
from core.notifications import Channel
from storage import migrate
from storage.checkpoints import WalCheckpointer
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory

log = logging.getLogger(__name__)


def configure_logging(level: str = "INFO") -> None:
    """Our loggers at `level`; httpx at WARNING since its INFO lines carry the bot token."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class Runtime:
    """Every long-running part of one Lacre process, started and stopped in order.

    Each transport can be replaced by a keyword (tests and `lacre demo` do): the Bot API
    request objects, the e-mail and message senders, extra HTTP routes, the tick interval.
    """

    app: App
    request: BaseRequest | None = None
    get_updates_request: BaseRequest | None = None
    email: EmailSending | None = None
    messages: MessageSending | None = None
    message_channels: Sequence[Channel] | None = None
    extra_routes: Sequence[BaseRoute] = ()
    scheduler_interval: float | None = None
    rate_limiter: bool = True
    poll_timeout: int = 10  # seconds of one getUpdates long poll; stopping waits for it
    application: AnyApplication = field(init=False)
    worker: OutboxWorker = field(init=False)
    http: HttpServer = field(init=False)
    scheduler: SchedulerService = field(init=False)
    checkpoints: WalCheckpointer = field(init=False)
    _twilio: TwilioSender | None = field(init=False, default=None)
    _polling: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        s = self.app.settings
        self.application = build_application(
            self.app,
            base_url=s.telegram_api_base_url,
            token=s.telegram_bot_token.get_secret_value(),
            request=self.request,
            get_updates_request=self.get_updates_request,
            rate_limiter=AIORateLimiter(max_retries=1) if self.rate_limiter else None,
            extra_handlers=scheduler_handlers(self.app),
        )
        services: BotServices = self.application.bot_data[SERVICES_KEY]

        async def blocked(telegram_user_id: int) -> None:
            await asyncio.to_thread(services.browse.mark_blocked, telegram_user_id)

        outbox = SqlOutbox(SqlUnitOfWorkFactory(self.app.engine))
        if self.messages is None:
            self._twilio = TwilioSender.from_settings(s)
            messages: MessageSending | None = self._twilio if self._twilio.channels else None
            channels: Sequence[Channel] = self._twilio.channels
        else:
            messages = self.messages
            channels = self.message_channels or (Channel.SMS, Channel.WHATSAPP)
        self.worker = OutboxWorker(
            outbox=outbox,
            lacre=self.app.lacre,
            clock=self.app.clock,
            email=self.email or SmtpEmailSender.from_settings(s),
            messages=messages,
            message_channels=channels,
            messenger=TelegramMessenger(self.application.bot, on_blocked=blocked),
            concurrency=s.outbox_concurrency,
            poll_seconds=s.outbox_poll_seconds,
        )
        routes = list(self.extra_routes)
        if s.telegram_mode == "webhook":
            routes.append(
                telegram_webhook_route(
                    self.application, s.telegram_webhook_secret.get_secret_value()
                )
            )
        self.http = HttpServer(
            build_http_app(
                outbox=outbox,
                lacre=self.app.lacre,
                clock=self.app.clock,
                twilio=TwilioStatusConfig(
                    s.twilio_auth_token.get_secret_value(), s.public_base_url
                ),
                health=self._database_answers,
                on_change=self.worker.wake,
                extra_routes=routes,
            ),
            s.http_host,
            s.http_port,
        )
        self.scheduler = build_scheduler(
            self.app, self.application.bot, interval_seconds=self.scheduler_interval
        )
        self.checkpoints = WalCheckpointer(self.app.engine)

    def _database_answers(self) -> bool:
        try:
            with self.app.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not healthy"; the reason is logged
            log.exception("health check: database unavailable")
            return False
        return True

    async def start(self) -> None:
        """HTTP first (callbacks and webhooks need it), then Telegram, worker, scheduler and,
        on a SQLite file, the WAL checkpoints (decision 0009): last, so that a part that fails
        to start leaves no thread behind."""
        s = self.app.settings
        await self.http.start()
        await self.application.initialize()
        # post_init (the command menus) runs only inside run_polling(); our loop calls it.
        if self.application.post_init is not None:
            await self.application.post_init(self.application)
        await self.application.start()
        if s.telegram_mode == "webhook":
            await self.application.bot.set_webhook(
                url=s.public_base_url.rstrip("/") + WEBHOOK_PATH,
                secret_token=s.telegram_webhook_secret.get_secret_value(),
                allowed_updates=["message", "callback_query"],
            )
        else:
            updater = self.application.updater
            assert updater is not None
            await updater.start_polling(
                timeout=self.poll_timeout, allowed_updates=["message", "callback_query"]
            )
            self._polling = True
        await self.worker.start()
        await self.scheduler.start()
        self.checkpoints.start()
        log.info("lacre is running (%s mode); HTTP on %s", s.telegram_mode, self.http.url)

    async def stop(self) -> None:
        """Reverse order; each part finishes what it has in flight."""
        await self.scheduler.stop()
        await self.worker.stop()
        if self._polling and self.application.updater is not None:
            await self.application.updater.stop()
            self._polling = False
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.http.stop()
        if self._twilio is not None:
            await self._twilio.close()
        await asyncio.to_thread(self.checkpoints.stop)


def freeze_startup_heap() -> None:
    """Keep what startup built (modules, catalogues, table metadata, the application) out of
    the cyclic collector's full passes: it lives as long as the process, and walking it took
    64 ms per full collection (133,646 objects), a pause for every update waiting then."""
    gc.collect()
    gc.freeze()


async def serve(
    runtime: Runtime, stop: asyncio.Event, started: Callable[[], None] | None = None
) -> None:
    """Run until `stop` is set, then shut down cleanly; `started` runs once everything is up."""
    await runtime.start()
    if started is not None:
        started()
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def run(settings: Settings, **overrides: Any) -> int:
    """The `lacre run` command: refuses to start without a token or on an old schema."""
    configure_logging(settings.log_level)
    # python-telegram-bot 22 warns about its own RetryAfter field type; opt in to the new one.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    if not settings.telegram_bot_token.get_secret_value():
        log.error("TELEGRAM_BOT_TOKEN is not set: `lacre demo` runs without one")
        return 2
    app = bootstrap(settings)
    if not migrate.is_current(app.engine):
        log.error("the database is not up to date: run `lacre db upgrade` first")
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(Runtime(app, **overrides), stop, started=freeze_startup_heap)

    try:
        asyncio.run(main())
    finally:
        app.engine.dispose()
    return 0
