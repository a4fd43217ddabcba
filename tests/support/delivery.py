"""Delivery test kit: a real SMTP server, the fake Twilio API, the HTTP app, a worker, owners."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import stamina
from aiosmtpd.controller import Controller
from sqlalchemy import text

from bot.bootstrap import App
from bot.delivery.email import SmtpEmailSender
from bot.delivery.twilio_sender import TwilioSender
from bot.delivery.worker import OutboxWorker
from bot.http.app import TwilioStatusConfig, build_http_app
from bot.http.server import HttpServer
from bot.sandbox.twilio_api import FakeTwilio, TwilioApiServer
from core.clock import FixedClock
from core.delivery import DeliveryPolicy
from core.notifications import Channel, Notification
from storage.audit import audit
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory
from tests.support.builders import Seeded, envelope_json, import_envelopes, seed_account

SMS_FROM = "+15005550006"
WHATSAPP_FROM = "whatsapp:+14155238886"
CONTENT_SID = "HX" + "b" * 32
MARIA = "+5511987654321"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    """An aiosmtpd handler: keeps what it accepts, refuses what it is told to."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> "550 ..." reply
    temporary: deque[str] = field(default_factory=deque)  # next RCPT replies, e.g. "451 ..."
    rcpt_seen: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_seen += 1
        if address in self.refuse:
            return self.refuse[address]
        if self.temporary:
            return self.temporary.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@dataclass
class Smtp:
    sink: SmtpSink
    host: str
    port: int

    def sender(self, sender: str = "Lacre <nao-responda@lacre.local>") -> SmtpEmailSender:
        return SmtpEmailSender(host=self.host, port=self.port, sender=sender, timeout=5.0)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(sink, "127.0.0.1", port)
    finally:
        controller.stop()


@dataclass
class Owner:
    """What the owners read in Telegram (a recording Messenger)."""

    sent: list[tuple[int, str]] = field(default_factory=list)

    async def send(self, telegram_user_id: int, html: str) -> bool:
        self.sent.append((telegram_user_id, html))
        return True

    def to(self, telegram_user_id: int) -> list[str]:
        return [h for uid, h in self.sent if uid == telegram_user_id]


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    """Retries keep their attempts (capped) but never wait, as stamina's test mode does."""
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


@pytest.fixture
async def twilio(clock: FixedClock) -> AsyncIterator[TwilioApiServer]:
    server = TwilioApiServer(FakeTwilio(clock=clock.now))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Callbacks:
    server: HttpServer
    outbox: SqlOutbox
    public_url: str
    changes: int = 0  # times the app said a status moved (the worker's wake-up)


@pytest.fixture
async def callbacks(app: App, twilio: TwilioApiServer) -> AsyncIterator[Callbacks]:
    """The HTTP app on 127.0.0.1; its public URL is what Twilio signs callbacks for."""
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))
    holder: list[Callbacks] = []

    def changed() -> None:
        holder[0].changes += 1

    http_app = build_http_app(
        outbox=outbox,
        lacre=app.lacre,
        clock=app.clock,
        twilio=TwilioStatusConfig(twilio.api.auth_token, public_url),
        on_change=changed,
    )
    server = HttpServer(http_app, "127.0.0.1", port)
    await server.start()
    holder.append(Callbacks(server, outbox, public_url))
    try:
        yield holder[0]
    finally:
        await server.stop()


def twilio_sender(
    twilio: TwilioApiServer, public_url: str, *, timeout: float = 2.0, service: str = ""
) -> TwilioSender:
    return TwilioSender(
        account_sid=twilio.api.account_sid,
        auth_token=twilio.api.auth_token,
        status_callback_url=public_url.rstrip("/") + "/twilio/status",
        sms_from="" if service else SMS_FROM,
        messaging_service_sid=service,
        whatsapp_from=WHATSAPP_FROM,
        whatsapp_content_sid=CONTENT_SID,
        api_base_url=twilio.base_url,
        timeout=timeout,
    )


def worker(
    app: App,
    *,
    email: SmtpEmailSender | None = None,
    messages: TwilioSender | None = None,
    messenger: Owner | None = None,
    policy: DeliveryPolicy | None = None,
) -> OutboxWorker:
    return OutboxWorker(
        outbox=SqlOutbox(SqlUnitOfWorkFactory(app.engine)),
        lacre=app.lacre,
        clock=app.clock,
        email=email,
        messages=messages,
        messenger=messenger,
        policy=policy,
    )


@dataclass
class Sealed:
    seeded: Seeded
    envelope_id: int
    maria_id: int
    joao_id: int


def sealed_envelope(app: App, **envelope: Any) -> Sealed:
    """An account with credits and a sealed envelope: Maria has a mobile, João no phone."""
    seeded = seed_account(app, credits=10)
    env_id = import_envelopes(app, seeded.account.id, envelope_json(**envelope))["ENV-1001"]
    app.lacre.seal(seeded.admin.id, env_id)
    env = app.lacre.envelope(seeded.admin.id, env_id)
    maria = env.signer_by_email("maria@example.com")
    joao = env.signer_by_email("joao@example.com")
    assert maria.id is not None and joao.id is not None
    return Sealed(seeded, env_id, maria.id, joao.id)


def row(app: App, notification_id: int) -> Notification:
    with app.uow(write=False) as uow:
        found = uow.notifications.get(notification_id)
    assert found is not None
    return found


def emails_of(app: App, envelope_id: int) -> list[Notification]:
    with app.uow(write=False) as uow:
        return [
            n for n in uow.notifications.for_envelope(envelope_id) if n.channel is Channel.EMAIL
        ]


def refunds(app: App, notification_id: int) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM ledger_entries WHERE reason = 'refund' "
                    "AND notification_id = :n"
                ),
                {"n": notification_id},
            ).scalar_one()
        )


def ledger_size(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar_one())


def assert_audit_clean(app: App) -> None:
    with app.engine.connect() as conn:
        assert audit(conn) == []
