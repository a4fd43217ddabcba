"""The free e-mail signature request through the outbox to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr

import pytest
from sqlalchemy import text

from bot.bootstrap import App
from core.clock import FixedClock
from core.notifications import DeliveryStatus
from tests.support.builders import envelope_json, linked_user
from tests.support.delivery import (
    Owner,
    Smtp,
    assert_audit_clean,
    emails_of,
    ledger_size,
    no_retry_waits,
    sealed_envelope,
    smtp,
    worker,
)

__all__ = ["no_retry_waits", "smtp"]  # fixtures used by name


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


async def test_sealing_emails_every_signer_the_signature_request_in_portuguese(
    app: App, smtp: Smtp
) -> None:
    sealed = sealed_envelope(app)
    await worker(app, email=smtp.sender()).run_once()

    by_rcpt = {parseaddr(m["To"])[1]: m for m in smtp.sink.messages}
    assert set(by_rcpt) == {"maria@example.com", "joao@example.com"}
    maria = by_rcpt["maria@example.com"]
    assert maria["Subject"] == "Requisição de Assinatura: Contrato de locação"
    assert parseaddr(maria["From"]) == ("Imobiliária Sol", "nao-responda@lacre.local")
    assert parseaddr(maria["To"]) == ("Maria Souza", "maria@example.com")
    assert maria["Message-ID"].startswith("<") and maria["Message-ID"].endswith("@lacre.local>")
    plain, rich = _parts(maria)
    link = "https://app.assin.com.br/assinar/ENV-1001"
    assert "Olá, Maria Souza." in plain
    assert "Imobiliária Sol enviou o envelope «Contrato de locação» para você assinar." in plain
    assert "Prazo para assinar: 10/12/2026 18:00." in plain
    assert f"Assinar Envelope: {link}" in plain
    assert f'href="{link}"' in rich and ">Assinar Envelope</a>" in rich
    assert "Imobiliária Sol" in rich
    for n in emails_of(app, sealed.envelope_id):
        assert n.status is DeliveryStatus.SENT
        assert n.cost == 0
    assert_audit_clean(app)


async def test_an_english_account_sends_the_request_in_english_with_names_escaped(
    app: App, smtp: Smtp
) -> None:
    sealed = sealed_envelope(app, title="Lease <A & B>")
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET language = 'en'"))
    await worker(app, email=smtp.sender()).run_once()

    message = next(m for m in smtp.sink.messages if "maria" in m["To"])
    assert message["Subject"] == "Signature Request: Lease <A & B>"
    plain, rich = _parts(message)
    assert "sent you the envelope “Lease <A & B>” to sign." in plain
    assert "Lease &lt;A &amp; B&gt;" in rich and "<A & B>" not in rich
    assert ">Sign Envelope</a>" in rich
    assert all(n.status is DeliveryStatus.SENT for n in emails_of(app, sealed.envelope_id))
    assert_audit_clean(app)


async def test_a_temporary_smtp_refusal_is_retried_later_with_backoff(
    app: App, smtp: Smtp, clock: FixedClock
) -> None:
    sealed = sealed_envelope(app)
    smtp.sink.temporary.extend(["451 4.7.1 Greylisted, try again later"] * 2)
    work = worker(app, email=smtp.sender())

    await work.run_once()
    delivered_first = {parseaddr(m["To"])[1] for m in smtp.sink.messages}
    waiting = [n for n in emails_of(app, sealed.envelope_id) if n.status is DeliveryStatus.QUEUED]
    assert len(waiting) == 2 and not delivered_first
    assert all(n.error_code == "451" for n in waiting)
    assert all(n.next_attempt_at == clock.now() + timedelta(minutes=1) for n in waiting)

    await work.run_once()  # not due yet: the server is not asked again
    assert smtp.sink.rcpt_seen == 2

    clock.advance(timedelta(minutes=1))
    await work.run_once()
    assert {parseaddr(m["To"])[1] for m in smtp.sink.messages} == {
        "maria@example.com",
        "joao@example.com",
    }
    assert all(n.status is DeliveryStatus.SENT for n in emails_of(app, sealed.envelope_id))
    assert_audit_clean(app)


async def test_an_smtp_server_that_stays_down_fails_the_email_after_the_last_retry(
    app: App, smtp: Smtp, clock: FixedClock
) -> None:
    sealed = sealed_envelope(app)
    owner = Owner()
    down = smtp.sender()
    down.port = 1  # nothing listens there: connection refused every time
    work = worker(app, email=down, messenger=owner)
    for _ in range(len(work.policy.email_retry_delays) + 1):
        await work.run_once()
        clock.advance(timedelta(hours=3))

    rows = emails_of(app, sealed.envelope_id)
    assert all(n.status is DeliveryStatus.FAILED for n in rows)
    assert all(n.attempts == len(work.policy.email_retry_delays) + 1 for n in rows)
    notices = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    assert len(notices) == 2
    assert all("indisponível" in n for n in notices)
    assert_audit_clean(app)


async def test_smtp_550_fails_the_row_and_tells_the_owner_who_sealed_in_their_language(
    app: App, smtp: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sealed = sealed_envelope(app)
    smtp.sink.refuse["joao@example.com"] = "550 5.1.1 <joao@example.com>: mailbox unavailable"
    owner = Owner()
    entries = ledger_size(app)
    work = worker(app, email=smtp.sender(), messenger=owner)

    await work.run_once()
    await work.run_once()

    by_address = {n.destination: n for n in emails_of(app, sealed.envelope_id)}
    assert by_address["maria@example.com"].status is DeliveryStatus.SENT
    failed = by_address["joao@example.com"]
    assert failed.status is DeliveryStatus.FAILED and failed.error_code == "550"
    assert [parseaddr(m["To"])[1] for m in smtp.sink.messages] == ["maria@example.com"]
    [notice] = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    assert "João Lima" in notice and "joao@example.com" in notice
    assert "Canal: E-mail" in notice
    assert "o servidor de e-mail recusou a mensagem" in notice
    assert "Código do provedor: 550" in notice
    assert "E-mail é grátis" in notice
    assert ledger_size(app) == entries  # e-mail touches no balance
    # At INFO and up (the default), aside from the test's own SMTP server ("mail.log").
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name != "mail.log"
    )
    assert "j***@example.com" in logged and "joao@example.com" not in logged
    assert_audit_clean(app)


async def test_a_failure_nobody_asked_for_goes_to_every_admin_in_their_language(
    app: App, smtp: Smtp
) -> None:
    ordered = envelope_json(ordered=True)
    ordered["signers"][1]["order"] = 1  # João signs after Maria
    sealed = sealed_envelope(app, **ordered)
    carla = linked_user(app, sealed.seeded.account.id, name="Carla")
    with app.uow() as uow:
        uow.users.set_language(carla.id, "es")
        uow.commit()
    await worker(app, email=smtp.sender()).run_once()  # Maria's request, asked for by Ana
    smtp.sink.refuse["joao@example.com"] = "550 5.1.1 mailbox unavailable"
    owner = Owner()

    # Maria signs: João's turn comes with a request nobody in Telegram asked for.
    app.lacre.record_signature("ENV-1001", "maria@example.com")
    await worker(app, email=smtp.sender(), messenger=owner).run_once()

    ana = sealed.seeded.admin.telegram_user_id or 0
    [to_ana] = owner.to(ana)
    [to_carla] = owner.to(carla.telegram_user_id or 0)
    assert owner.to(sealed.seeded.member.telegram_user_id or 0) == []
    assert "Motivo: o servidor de e-mail recusou a mensagem" in to_ana
    assert "Motivo: el servidor de correo rechazó el mensaje" in to_carla
    assert "João Lima" in to_carla
    assert_audit_clean(app)
