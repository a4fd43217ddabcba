"""`lacre demo`: the real bot against embedded fakes of Telegram, Twilio and SMTP, with a page.

Everything listens on 127.0.0.1 only. The bot runs through `bot.runner.Runtime`, the same
process `lacre run` starts, configured by settings to talk to the fakes: no handler knows it
is in a sandbox. The demo database (`./lacre-demo.db`) is seeded through the use cases only,
on a clock that walks through the account's history, so the ledger, the e-mails of the past
and the envelopes' times are what the real product would have stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from babel.dates import format_datetime

from bot.bootstrap import App, bootstrap
from bot.delivery.ports import Job
from bot.delivery.worker import OutboxWorker
from bot.http.server import HttpServer
from bot.phones import national
from bot.runner import Runtime, configure_logging
from bot.sandbox.bot_api import BotApiServer, ChatMessage, FakeBotApi, FakeUser
from bot.sandbox.clock import ShiftedClock
from bot.sandbox.twilio_api import FakeMessage, FakeTwilio, TwilioApiServer
from bot.sandbox.web import build_web_app, sanitize_html
from bot.settings import Settings
from core.accounts import Role
from core.clock import FixedClock
from core.delivery import Attempt, Verdict
from core.envelopes import EnvelopeStatus
from core.importing import parse_import
from core.ports import EnvelopeQuery
from core.reminders import Reminders, ReminderUnitOfWorkFactory
from storage import migrate
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "Imobiliária Horizonte Ltda"
DEMO_PLAN = "profissional"
DEMO_ZONE = ZoneInfo("America/Sao_Paulo")
# The owner who "opened Telegram": the page is this user's chat with the bot.
DEMO_USER = FakeUser(880_042_001, "Ana", language_code="pt-br", username="ana_horizonte")
DEMO_USER_NAME = "Ana Ribeiro"
# Sandbox Twilio senders: the fake accepts anything well formed; none of them is real.
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "whatsapp:+14155238886"
WHATSAPP_TEMPLATE = "HX" + "d" * 32
# What the page's clock buttons may do: forward only, at most this far in one step.
MAX_STEP = timedelta(days=30)
# Failure the page's "make the next delivery fail" injects: 30005, unknown handset.
FAILURE = ("failed", 30005)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# -- the seeded account ------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str | None = None
    order: int = 0


@dataclass(frozen=True)
class Story:
    """One envelope of the demo and what happened to it, times relative to "now"."""

    ref: str
    title: str
    description: str
    expires: timedelta
    signers: tuple[Person, ...]
    documents: tuple[tuple[str, int], ...]
    credits: int | None = 3
    ordered: bool = False
    icp: bool = False
    tags: tuple[str, ...] = ()
    # (when, what, whom): "seal", "sign" (signer e-mail), "block", "cancel", "delete"
    events: tuple[tuple[timedelta, str, str], ...] = ()


def _p(name: str, email: str, phone: str | None = None, order: int = 0) -> Person:
    return Person(name, email, phone, order)


STORIES: tuple[Story, ...] = (
    Story(
        "ENV-2401",
        "Contrato de locação - Apto 42, Vila Mariana",
        "Locação residencial por 30 meses, garantia seguro-fiança.",
        10 * DAY,
        (
            _p("Mariana Costa", "mariana.costa@example.com", "(11) 98765-4321"),
            _p("Rafael Almeida", "rafael.almeida@example.com", "(11) 99182-7364"),
        ),
        (("contrato-locacao-apto42.pdf", 6), ("laudo-vistoria-apto42.pdf", 3)),
        credits=3,
        tags=("locação",),
    ),
    Story(
        "ENV-2402",
        "Aditivo contratual - Loja 3, Rua dos Pinheiros",
        "Reajuste do aluguel e prorrogação por 12 meses.",
        15 * DAY,
        (
            _p("Eduardo Moreira", "eduardo.moreira@example.com", "(11) 97453-2201"),
            _p("Vanessa Cardoso", "vanessa.cardoso@example.org"),
        ),
        (("aditivo-loja3.pdf", 2),),
        credits=None,
        tags=("comercial",),
    ),
    Story(
        "ENV-2403",
        "Autorização de venda com exclusividade - Casa, Granja Viana",
        "Exclusividade de 90 dias, comissão de 6%.",
        20 * DAY,
        (_p("Marcelo Lopes", "marcelo.lopes@example.com", "(11) 96631-0487"),),
        (("autorizacao-venda.pdf", 2),),
        credits=2,
        tags=("venda",),
    ),
    Story(
        "ENV-2390",
        "Contrato de locação - Sala 1204, Av. Paulista",
        "Locação comercial, 36 meses.",
        HOUR + 45 * timedelta(minutes=1),
        (
            _p("Carlos Eduardo Santos", "carlos.santos@example.com", "(11) 95218-6640"),
            _p("Juliana Pereira", "juliana.pereira@example.com", "(11) 94120-3398"),
        ),
        (("contrato-sala1204.pdf", 8),),
        credits=3,
        tags=("comercial",),
        events=(
            (-8 * DAY, "seal", ""),
            (-5 * DAY, "sign", "carlos.santos@example.com"),
        ),
    ),
    Story(
        "ENV-2391",
        "Compromisso de compra e venda - Apto 81, Moema",
        "Sinal de 10%, escritura em 60 dias. Assinaturas na ordem: vendedora, comprador, fiador.",
        DAY + 30 * timedelta(minutes=1),
        (
            _p("Fernanda Oliveira", "fernanda.oliveira@example.com", "(11) 99345-7781", 0),
            _p("Lucas Martins", "lucas.martins@example.com", "(11) 98102-5567", 1),
            _p("Beatriz Rocha", "beatriz.rocha@example.org", "(11) 91234-5678", 2),
        ),
        (("compromisso-compra-venda.pdf", 12), ("matricula-imovel.pdf", 4)),
        credits=4,
        ordered=True,
        tags=("venda",),
        events=(
            (-30 * HOUR, "seal", ""),
            (-20 * HOUR, "sign", "fernanda.oliveira@example.com"),
        ),
    ),
    Story(
        "ENV-2392",
        "Termo de vistoria de saída - Casa, Butantã",
        "Entrega das chaves e vistoria final.",
        3 * DAY + 12 * HOUR,
        (
            _p("Thiago Carvalho", "thiago.carvalho@example.com", "(11) 3061-4520"),
            _p("Camila Ferreira", "camila.ferreira@example.org"),
            _p("Gustavo Ribeiro", "gustavo.ribeiro@example.com", "(21) 99876-1203"),
        ),
        (("termo-vistoria-saida.pdf", 5),),
        credits=2,
        tags=("locação",),
        events=((-4 * DAY, "seal", ""),),
    ),
    Story(
        "ENV-2393",
        "Procuração para venda - Terreno, Cotia",
        "Procuração com certificado ICP-Brasil.",
        12 * DAY,
        (_p("Patrícia Gomes", "patricia.gomes@example.com", "(11) 98877-1020"),),
        (("procuracao-terreno.pdf", 3),),
        credits=None,
        icp=True,
        tags=("venda",),
        events=((-2 * DAY, "seal", ""),),
    ),
    Story(
        "ENV-2380",
        "Contrato de administração de imóvel - Ed. Jardins",
        "Bloqueado para revisão da taxa de administração.",
        8 * DAY,
        (
            _p("Rodrigo Nascimento", "rodrigo.nascimento@example.com", "(11) 99021-3344"),
            _p("Aline Barbosa", "aline.barbosa@example.com", "(11) 97766-5521"),
        ),
        (("contrato-administracao.pdf", 7),),
        credits=3,
        tags=("administração",),
        events=((-10 * DAY, "seal", ""), (-9 * DAY, "block", "")),
    ),
    Story(
        "ENV-2385",
        "Renovação de locação - Apto 23, Perdizes",
        "Renovação por mais 12 meses.",
        -2 * DAY,
        (
            _p("Felipe Araújo", "felipe.araujo@example.com", "(11) 96543-2109"),
            _p("Larissa Mendes", "larissa.mendes@example.com", "(11) 95432-1098"),
        ),
        (("renovacao-apto23.pdf", 4),),
        credits=2,
        tags=("locação",),
        events=((-12 * DAY + HOUR, "seal", ""), (-11 * DAY, "sign", "felipe.araujo@example.com")),
    ),
    Story(
        "ENV-2370",
        "Contrato de locação - Casa, Vila Madalena",
        "Locação residencial, 30 meses.",
        5 * DAY,
        (
            _p("Bruno Teixeira", "bruno.teixeira@example.com", "(11) 98234-5566"),
            _p("Renata Dias", "renata.dias@example.org", "(11) 97123-4455"),
        ),
        (("contrato-vila-madalena.pdf", 6),),
        credits=3,
        tags=("locação",),
        events=(
            (-16 * DAY, "seal", ""),
            (-15 * DAY, "sign", "bruno.teixeira@example.com"),
            (-14 * DAY, "sign", "renata.dias@example.org"),
        ),
    ),
    Story(
        "ENV-2371",
        "Distrato de locação - Loja 7, Santana",
        "Encerramento antecipado sem multa.",
        9 * DAY,
        (
            _p("Sérgio Lima", "sergio.lima@example.com", "(11) 96012-3344", 0),
            _p("Débora Souza", "debora.souza@example.com", "(11) 95901-2233", 1),
        ),
        (("distrato-loja7.pdf", 2),),
        credits=2,
        ordered=True,
        tags=("comercial",),
        events=(
            (-14 * DAY + 3 * HOUR, "seal", ""),
            (-13 * DAY, "sign", "sergio.lima@example.com"),
            (-12 * DAY, "sign", "debora.souza@example.com"),
        ),
    ),
    Story(
        "ENV-2360",
        "Proposta de locação - Galpão, Barueri",
        "Cancelada: o locatário desistiu.",
        DAY,
        (
            _p("Ricardo Monteiro", "ricardo.monteiro@example.com", "(11) 94890-1122"),
            _p("Tatiane Freitas", "tatiane.freitas@example.com", "(11) 93789-0011"),
        ),
        (("proposta-galpao.pdf", 3),),
        credits=2,
        tags=("comercial",),
        events=(
            (-13 * DAY + 2 * HOUR, "seal", ""),
            (-12 * DAY + 4 * HOUR, "sign", "ricardo.monteiro@example.com"),
            (-10 * DAY + 5 * HOUR, "cancel", ""),
        ),
    ),
    Story(
        "ENV-2350",
        "Contrato de locação - Apto 42 (cópia)",
        "Rascunho duplicado por engano.",
        10 * DAY,
        (_p("Mariana Costa", "mariana.costa@example.com", "(11) 98765-4321"),),
        (("contrato-locacao-apto42.pdf", 6),),
        credits=3,
        events=((-17 * DAY + HOUR, "delete", ""),),
    ),
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(DEMO_ZONE).isoformat(timespec="minutes")


def _import_item(story: Story, now: datetime) -> dict[str, Any]:
    item: dict[str, Any] = {
        "ref": story.ref,
        "title": story.title,
        "description": story.description,
        "status": "rascunho",
        "icp": story.icp,
        "ordered": story.ordered,
        "expires_at": _iso(now + story.expires),
        "documents": [{"name": n, "pages": p} for n, p in story.documents],
        "signers": [
            {
                "name": s.name,
                "email": s.email,
                **({"phone": s.phone} if s.phone else {}),
                "order": s.order,
                "status": "pendente",
            }
            for s in story.signers
        ],
        "tags": list(story.tags),
    }
    if story.credits is not None:
        item["credits"] = story.credits
    return item


class _PastEmails:
    """The e-mail sender of the seeded past: those requests went out before the demo began,
    so they are accepted (and recorded as sent) without reaching the demo's mailbox."""

    async def send(self, job: Job) -> Attempt:
        return Attempt(Verdict.ACCEPTED)


async def seed(app: App, now: datetime) -> int:
    """Create the demo account through the use cases, walking a clock through its history;
    returns the account id."""
    # Subscribed 18 days ago: the plan renews in about twelve days, not during a short demo.
    clock = FixedClock(now - 18 * DAY)
    past = bootstrap(app.settings, engine=app.engine, uow=app.uow, clock=clock)
    lacre = past.lacre
    outbox = OutboxWorker(
        outbox=SqlOutbox(SqlUnitOfWorkFactory(app.engine)),
        lacre=lacre,
        clock=clock,
        email=_PastEmails(),
    )
    account = lacre.create_account(DEMO_ACCOUNT, DEMO_PLAN)
    lacre.grant(
        account.id,
        notification_credits=20,
        reason="Pacote de 20 créditos de notificação",
        idempotency_key=f"demo-seed:{account.id}",
    )
    admin = lacre.link(
        lacre.create_link_token(account.id, Role.ADMIN),
        DEMO_USER.id,
        DEMO_USER_NAME,
        "pt-BR",
    )
    clock.set(now - 17 * DAY)
    batch = {"account_id": account.id, "envelopes": [_import_item(s, now) for s in STORIES]}
    lacre.import_envelopes(parse_import(batch, lacre.phones))
    ids: dict[str, int] = {}
    with app.uow(write=False) as uow:
        for story in STORIES:
            found = uow.envelopes.get_by_ref(account.id, story.ref)
            assert found is not None and found.id is not None
            ids[story.ref] = found.id
    events = sorted(
        ((at, story.ref, what, whom) for story in STORIES for at, what, whom in story.events),
        key=lambda e: e[0],
    )
    for at, ref, what, whom in events:
        clock.set(now + at)
        if what == "seal":
            lacre.seal(admin.id, ids[ref])
        elif what == "sign":
            lacre.record_signature(ref, whom, account.id)
        elif what == "block":
            lacre.block(admin.id, ids[ref])
        elif what == "cancel":
            lacre.cancel(admin.id, ids[ref])
        elif what == "delete":
            lacre.delete_draft(admin.id, ids[ref])
        # The signature requests of that day leave that day.
        while await outbox.run_once():
            pass
    clock.set(now)
    # The owner's choice in /lembretes: no quiet hours, so nudges show whenever the demo runs.
    reminders = Reminders(lacre, cast(ReminderUnitOfWorkFactory, app.uow), clock)
    reminders.update(admin.id, lambda settings: replace(settings, quiet=None))
    return account.id


# -- the captured mailbox ----------------------------------------------------------------------
@dataclass(frozen=True)
class CapturedEmail:
    subject: str
    to: str
    text: str
    at: datetime


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts (runs in its own thread)."""

    clock: Callable[[], datetime]
    messages: list[CapturedEmail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
        to = ", ".join(addr for _name, addr in getaddresses([str(parsed.get("To", ""))]))
        with self._lock:
            self.messages.append(
                CapturedEmail(str(parsed.get("Subject", "")), to, str(text).strip(), self.clock())
            )
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[CapturedEmail]:
        with self._lock:
            return list(self.messages)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- the sandbox -------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


class Sandbox:
    """The whole demo in the running event loop: `await start()`, use, `await stop()`.

    One start per object (its fakes keep their state); tests build one per run. Only the
    page listens on `port`; the fakes, the SMTP server and the bot's HTTP app (Twilio's
    status callbacks) take free ports on 127.0.0.1.
    """

    def __init__(
        self,
        port: int = 8080,
        *,
        host: str = "127.0.0.1",
        db_path: str | os.PathLike[str] = "lacre-demo.db",
        reset: bool = False,
        scheduler_tick_seconds: float = 2.0,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError("the sandbox listens on 127.0.0.1 only")
        self.host, self.port, self.reset = host, port, reset
        self.db_path = Path(db_path).absolute()
        self.tick = scheduler_tick_seconds
        self.clock = ShiftedClock()
        self.seeded = False  # True when this start created the demo data
        self.account_id = 0
        self.api = FakeBotApi(clock=self.clock.timestamp)
        self.twilio = FakeTwilio(clock=self.clock.now, auto_progress=("sent", "delivered"))
        self.mailbox = Mailbox(self.clock.now)
        self._bot_server = BotApiServer(self.api, host="127.0.0.1")
        self._twilio_server = TwilioApiServer(self.twilio, host="127.0.0.1")
        self._smtp: Controller | None = None
        self._runtime: Runtime | None = None
        self._web: HttpServer | None = None
        self._app: App | None = None
        self._rendered: dict[int, tuple[tuple[int, int, str], dict[str, Any]]] = {}

    # -- paths -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def clock_file(self) -> Path:
        return self.db_path.with_name(self.db_path.name + ".clock")

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def app(self) -> App:
        assert self._app is not None, "the sandbox is not running"
        return self._app

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "the sandbox is not running"
        return self._runtime

    def _files(self) -> Iterator[Path]:
        for suffix in ("", "-wal", "-shm", "-journal", ".clock"):
            yield self.db_path.with_name(self.db_path.name + suffix)

    # -- start and stop ----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self.port:
            # Fail before seeding anything when the page's port is taken (the usual mistake).
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.host, self.port))
        if self.reset:
            for path in self._files():
                path.unlink(missing_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = ShiftedClock(self._saved_offset())
        # The fakes read the clock through these attributes; the new clock replaces the old.
        self.api.clock = self.clock.timestamp
        self.twilio.clock = self.clock.now
        self.mailbox.clock = self.clock.now
        await asyncio.to_thread(migrate.upgrade, self.database_url)

        smtp_port = free_port()
        self._smtp = Controller(self.mailbox, hostname="127.0.0.1", port=smtp_port)
        await asyncio.to_thread(self._smtp.start)
        await self._bot_server.start()
        await self._twilio_server.start()
        http_port = free_port()
        page = f"http://127.0.0.1:{self.port}"
        settings = Settings(
            _env_file=None,  # the demo ignores a .env meant for `lacre run`
            environment="development",
            telegram_bot_token=self.api.token,
            telegram_api_base_url=self._bot_server.base_url,
            telegram_mode="polling",
            database_url=self.database_url,
            public_base_url=f"http://127.0.0.1:{http_port}",
            http_host="127.0.0.1",
            http_port=http_port,
            twilio_account_sid=self.twilio.account_sid,
            twilio_auth_token=self.twilio.auth_token,
            twilio_sms_from=SMS_FROM,
            twilio_messaging_service_sid="",
            twilio_whatsapp_from=WHATSAPP_FROM,
            twilio_whatsapp_content_sid=WHATSAPP_TEMPLATE,
            twilio_api_base_url=self._twilio_server.base_url,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_username="",
            smtp_password="",
            smtp_tls="none",
            payment_url_template=page + "/pagamento?conta={account_id}&item={item}",
            scheduler_tick_seconds=self.tick,
            outbox_poll_seconds=0.2,
            default_timezone="America/Sao_Paulo",
        )
        self._app = bootstrap(settings, clock=self.clock)
        actor = await asyncio.to_thread(self.app.lacre.actor, DEMO_USER.id)
        if actor is None:
            try:
                self.account_id = await seed(self.app, self.clock.now())
            except BaseException:
                # A half-seeded file would be reused next time: start from nothing instead.
                self.app.engine.dispose()
                self._app = None
                for path in self._files():
                    path.unlink(missing_ok=True)
                raise
            self.seeded = True
        else:
            self.account_id = actor.account_id
        self._runtime = Runtime(self.app, scheduler_interval=self.tick, poll_timeout=1)
        # Before the bot starts: its first scheduler tick may already have a nudge for Ana.
        self.api.open_chat(DEMO_USER)
        await self.runtime.start()
        self._web = HttpServer(build_web_app(self), self.host, self.port, grace=1.0)
        await self._web.start()
        self.port = self._web.port
        # Ana opens the chat as Telegram users do: with /start.
        self.api.send_text(DEMO_USER, "/start")

    async def stop(self) -> None:
        """Stop everything that started, in reverse order; safe to call twice."""
        if self._web is not None:
            await self._web.stop()
            self._web = None
        if self._runtime is not None:
            await self._runtime.stop()
            self._runtime = None
        await self._twilio_server.stop()
        await self._bot_server.stop()
        if self._smtp is not None:
            await asyncio.to_thread(self._smtp.stop)
            self._smtp = None
        if self._app is not None:
            self._app.engine.dispose()
            self._app = None

    # -- the clock ---------------------------------------------------------------------------
    def _saved_offset(self) -> timedelta:
        try:
            data = json.loads(self.clock_file.read_text(encoding="utf-8"))
            seconds = float(data["offset_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return timedelta(0)
        return timedelta(seconds=max(seconds, 0.0))

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time forward: the next scheduler tick sees the new time."""
        if not timedelta(0) < delta <= MAX_STEP:
            raise ValueError("the clock moves forward by at most 30 days at a time")
        moment = self.clock.advance(delta)
        # Kept beside the database: a restart without --reset continues at the same time.
        self.clock_file.write_text(
            json.dumps({"offset_seconds": self.clock.offset.total_seconds()}), encoding="utf-8"
        )
        self.runtime.worker.wake()  # e-mail retries and lookups may be due now
        return moment

    # -- what the page does ------------------------------------------------------------------
    def send(self, text: str) -> ChatMessage:
        return self.api.send_text(DEMO_USER, text)

    def tap(self, message_id: int, data: str) -> str:
        """Tap a button that is on that message now (as a real client can only do)."""
        for message in self.api.messages(DEMO_USER.id):
            if message.message_id == message_id and message.from_bot:
                if any(b.get("callback_data") == data for b in message.buttons()):
                    return self.api.tap(DEMO_USER, message, data)
                raise LookupError("that message has no such button")
        raise LookupError("no such message")

    def sign(self, ref: str, email: str) -> None:
        """The platform reports a signature (what `lacre signer sign` does)."""
        self.app.lacre.record_signature(ref, email, self.account_id)

    def fail_next_delivery(self) -> None:
        self.twilio.fail_next_delivery(*FAILURE)

    def pending_envelopes(self) -> list[dict[str, Any]]:
        """Pending envelopes with their signers, for the page's "simulate a signature"."""
        now = self.clock.now()
        with self.app.uow(write=False) as uow:
            found = uow.envelopes.query(
                EnvelopeQuery(
                    self.account_id,
                    statuses=(EnvelopeStatus.PENDENTE,),
                    order_by_deadline=True,
                    limit=50,
                )
            )
        out = []
        # Envelopes that can still be signed first, the expired one last.
        for env in sorted(found, key=lambda e: e.is_expired(now)):
            in_turn = {id(s) for s in env.signers_in_turn()}
            out.append(
                {
                    "ref": env.ref,
                    "title": env.title,
                    "expired": env.is_expired(now),
                    "expires_at": env.expires_at.isoformat() if env.expires_at else None,
                    "signers": [
                        {
                            "name": s.name,
                            "email": s.email,
                            "phone": national(s.phone) if s.phone else None,
                            "signed": not s.is_pending,
                            "in_turn": id(s) in in_turn,
                        }
                        for s in env.signers
                    ],
                }
            )
        return out

    async def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready values (polled several times a second)."""
        now = self.clock.now()
        db = await asyncio.to_thread(self._db_snapshot)
        chat = [self._chat_message(m) for m in self.api.messages(DEMO_USER.id)]
        answers = [
            {"id": a.callback_query_id, "text": a.text, "alert": a.show_alert}
            for a in self.api.answers[-20:]
            if a.chat_id == DEMO_USER.id
        ]
        texts = sorted(self.twilio.messages.values(), key=lambda m: m.date_created, reverse=True)
        return {
            "now": now.isoformat(),
            "now_label": when_label(now),
            "offset_label": offset_label(self.clock.offset),
            "user": {"name": DEMO_USER_NAME, "first_name": DEMO_USER.first_name},
            "bot": {"name": self.api.first_name, "username": self.api.username},
            "commands": self.api.commands.get(("default", ""), []),
            "chat": chat,
            "answers": answers,
            "emails": [
                {
                    "subject": e.subject,
                    "to": e.to,
                    "text": e.text,
                    "time": when_label(e.at, short=True),
                }
                for e in reversed(self.mailbox.snapshot())
            ],
            "texts": [_text_message(m) for m in texts[:50]],
            "fail_next": self.twilio.next_delivery_fails,
            **db,
        }

    def _db_snapshot(self) -> dict[str, Any]:
        balances = self.app.lacre.balances(self.account_id)
        with self.app.uow(write=False) as uow:
            account = uow.accounts.get(self.account_id)
        plan = self.app.lacre.catalogue.plan(account.plan_code).name if account else ""
        return {
            "account": {"name": account.name if account else "", "plan": plan},
            "balances": {
                "credits": balances.credits,
                "notification_credits": balances.notification_credits,
            },
            "envelopes": self.pending_envelopes(),
        }

    def _chat_message(self, m: ChatMessage) -> dict[str, Any]:
        key = (m.message_id, m.edits, m.html)
        cached = self._rendered.get(m.message_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = (m.reply_markup or {}).get("inline_keyboard", []) if m.from_bot else []
        out: dict[str, Any] = {
            "id": m.message_id,
            "from_bot": m.from_bot,
            # Bot messages are Telegram HTML (sanitised); what Ana typed is plain text.
            "html": sanitize_html(m.html) if m.from_bot else "",
            "text": "" if m.from_bot else m.text,
            "time": when_label(datetime.fromtimestamp(m.date, UTC), clock_only=True),
            "edited": m.edits > 0,
            "buttons": [
                [
                    {"text": str(b.get("text", "")), "data": b["callback_data"]}
                    if "callback_data" in b
                    else {"text": str(b.get("text", "")), "url": safe_url(str(b.get("url", "")))}
                    for b in row
                ]
                for row in rows
            ],
        }
        self._rendered[m.message_id] = (key, out)
        return out


def when_label(moment: datetime, *, short: bool = False, clock_only: bool = False) -> str:
    """A moment as São Paulo reads it, in pt-BR."""
    pattern = "HH:mm" if clock_only else "d MMM, HH:mm" if short else "EEE, d 'de' MMM, HH:mm"
    return str(format_datetime(moment, pattern, tzinfo=DEMO_ZONE, locale="pt_BR"))


def offset_label(offset: timedelta) -> str:
    """How far the simulated clock runs ahead of the real one, in pt-BR."""
    minutes = int(offset.total_seconds() // 60)
    if minutes <= 0:
        return "relógio real"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} dia" + ("s" if days > 1 else ""))
    if hours:
        parts.append(f"{hours} h")
    if mins and not days:
        parts.append(f"{mins} min")
    return "+" + " e ".join(parts) + " à frente"


def safe_url(url: str) -> str:
    """Only web links leave the page; anything else (javascript:, data:) becomes inert."""
    return url if urlsplit(url).scheme in ("http", "https") else "#"


def _text_message(m: FakeMessage) -> dict[str, Any]:
    whatsapp = m.to.startswith("whatsapp:")
    bare = m.to.removeprefix("whatsapp:")
    try:
        to = national(bare)
    except Exception:  # a number the phone library cannot read is shown as sent
        to = bare
    body = m.body
    if not body and m.content_variables:
        try:
            v = json.loads(m.content_variables)
        except ValueError:
            v = {}
        body = (
            f"Olá, {v.get('1', '')}! {v.get('3', '')} pede sua assinatura em "
            f"“{v.get('2', '')}”. Assine em {v.get('4', '')}"
        )
    return {
        "sid": m.sid,
        "channel": "whatsapp" if whatsapp else "sms",
        "to": to,
        "body": body,
        "template": bool(m.content_sid),
        "status": m.status,
        "error_code": m.error_code,
        "segments": m.num_segments,
        "time": when_label(m.date_created, short=True),
    }


def _print(line: str) -> None:
    print(line, flush=True)


def demo(
    port: int = 8080,
    reset: bool = False,
    *,
    host: str = "127.0.0.1",
    db_path: str = "lacre-demo.db",
    ready: Callable[[str], object] | None = None,
) -> int:
    """The `lacre demo` command: run the sandbox until Ctrl+C; returns the exit code."""
    started = time.perf_counter()
    configure_logging("WARNING")
    # A tick that outlasts the 2 s interval (it paces messages to one chat at about 1 per
    # second) makes APScheduler warn that it skipped a run; in the demo that is only noise.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # python-telegram-bot 22 warns about its own RetryAfter field type; opt in to the new one.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    # Every address the sandbox talks to is local; a proxy must never see it.
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        hosts += [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        os.environ[name] = ",".join(hosts)
    try:
        sandbox = Sandbox(port, host=host, db_path=db_path, reset=reset)
    except ValueError as exc:
        _print(f"error: {exc}")
        return 2

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
        try:
            await sandbox.start()
        except OSError as exc:
            _print(f"error: could not start the sandbox on port {port}: {exc.strerror or exc}")
            _print("hint: another program uses that port; try `lacre demo --port 8081`")
            return 1
        what = "seeded a new demo database" if sandbox.seeded else "reusing the demo database"
        _print(f"{what}: {sandbox.db_path} (`lacre demo --reset` starts over)")
        _print(
            f"Lacre sandbox ready in {time.perf_counter() - started:.1f} s: "
            f"open {sandbox.url}  (Ctrl+C stops it)"
        )
        if ready is not None:
            ready(sandbox.url)
        try:
            await stop.wait()
        finally:
            _print("stopping…")
            await sandbox.stop()
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
