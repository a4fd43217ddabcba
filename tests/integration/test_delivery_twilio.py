"""SMS and WhatsApp through the outbox and the real twilio client against the fake Twilio API."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import stamina

from bot.bootstrap import App
from bot.delivery.twilio_sender import STATUS_CALLBACK_PATH
from bot.sandbox.twilio_api import TwilioApiServer
from core.clock import FixedClock
from core.errors import ChannelUnavailable, InvalidInput
from core.notifications import Channel, DeliveryStatus
from tests.support.builders import envelope_json, import_envelopes, seed_account
from tests.support.delivery import (
    CONTENT_SID,
    MARIA,
    SMS_FROM,
    WHATSAPP_FROM,
    Callbacks,
    Owner,
    assert_audit_clean,
    callbacks,
    ledger_size,
    no_retry_waits,
    refunds,
    row,
    sealed_envelope,
    twilio,
    twilio_sender,
    worker,
)

__all__ = ["callbacks", "no_retry_waits", "twilio"]  # fixtures used by name


async def test_an_sms_leaves_with_the_right_to_from_body_and_status_callback(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    public = "https://lacre.example.com"
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    sender = twilio_sender(twilio, public)
    try:
        assert await worker(app, messages=sender).run_once() == 1
    finally:
        await sender.close()

    [create] = twilio.api.creates()
    assert create.params["To"] == MARIA
    assert create.params["From"] == SMS_FROM
    assert create.params["Body"] == sent.notification.body
    assert "Assine em https://app.assin.com.br/assinar/ENV-1001" in create.params["Body"]
    assert create.params["StatusCallback"] == public + STATUS_CALLBACK_PATH
    [message] = twilio.api.messages.values()
    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.SENT
    assert after.provider_id == message.sid and message.sid.startswith("SM")
    assert app.lacre.balances(sealed.seeded.account.id).notification_credits == 5 - 1
    assert_audit_clean(app)


async def test_an_sms_through_a_messaging_service_names_the_service_not_a_number(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    service = "MG" + "c" * 32
    sender = twilio_sender(twilio, "https://lacre.example.com", service=service)
    try:
        await worker(app, messages=sender).run_once()
    finally:
        await sender.close()
    [create] = twilio.api.creates()
    assert create.params["MessagingServiceSid"] == service
    assert "From" not in create.params
    assert row(app, sent.notification.id).status is DeliveryStatus.SENT
    assert_audit_clean(app)


async def test_a_whatsapp_request_uses_the_approved_template_and_never_a_body(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.WHATSAPP, "tap-1"
    )
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender).run_once()
    finally:
        await sender.close()

    [create] = twilio.api.creates()
    assert create.params["To"] == f"whatsapp:{MARIA}"
    assert create.params["From"] == WHATSAPP_FROM
    assert create.params["ContentSid"] == CONTENT_SID
    assert "Body" not in create.params
    assert json.loads(create.params["ContentVariables"]) == {
        "1": "Maria Souza",
        "2": "Contrato de locação",
        "3": "Imobiliária Sol",
        "4": "https://app.assin.com.br/assinar/ENV-1001",
    }
    assert create.params["StatusCallback"] == "https://lacre.example.com/twilio/status"
    assert row(app, sent.notification.id).status is DeliveryStatus.SENT
    assert_audit_clean(app)


async def test_a_429_then_success_sends_one_message_and_charges_once(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    twilio.api.fail_next_create(429, 20429)
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender).run_once()
    finally:
        await sender.close()

    assert [c.status for c in twilio.api.creates()] == [429, 201]
    assert len(twilio.api.messages) == 1
    assert row(app, sent.notification.id).status is DeliveryStatus.SENT
    assert app.lacre.balances(sealed.seeded.account.id).notification_credits == 4
    assert_audit_clean(app)


async def test_a_refused_connection_is_retried_and_sends_one_message(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    await twilio.refuse_connections()
    retried: list[str] = []

    def reopen(details: stamina.instrumentation.RetryDetails) -> None:
        retried.append(type(details.caused_by).__name__)
        twilio.accept_connections()

    stamina.instrumentation.set_on_retry_hooks([reopen])
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender).run_once()
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
        await sender.close()

    assert retried == ["ClientConnectorError"]
    assert len(twilio.api.creates()) == 1
    assert row(app, sent.notification.id).status is DeliveryStatus.SENT
    assert_audit_clean(app)


async def test_twilio_unreachable_after_every_retry_fails_the_send_and_refunds_it(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    await twilio.refuse_connections()
    owner = Owner()
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender, messenger=owner).run_once()
    finally:
        await sender.close()

    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.FAILED
    assert refunds(app, after.id) == 1
    assert app.lacre.balances(sealed.seeded.account.id).notification_credits == 5
    [notice] = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    assert "nada foi enviado" in notice and "devolvido" in notice
    assert_audit_clean(app)


async def test_a_timeout_after_twilio_accepted_sends_no_second_message_and_ends_reconciled(
    app: App, twilio: TwilioApiServer, clock: FixedClock
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    twilio.api.hang_after_create()
    sender = twilio_sender(twilio, "https://lacre.example.com", timeout=0.3)
    work = worker(app, messages=sender)
    try:
        await work.run_once()
        assert row(app, sent.notification.id).status is DeliveryStatus.UNKNOWN
        twilio.api.release()
        await work.run_once()  # the lookup is not due yet: nothing happens
        assert row(app, sent.notification.id).status is DeliveryStatus.UNKNOWN
        clock.advance(timedelta(seconds=20))
        await work.run_once()
    finally:
        await sender.close()

    [message] = twilio.api.messages.values()
    assert len(twilio.api.creates()) == 1
    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.SENT
    assert after.provider_id == message.sid
    lookups = [r for r in twilio.api.requests if r.method == "GET"]
    assert lookups and lookups[0].params["To"] == MARIA
    assert refunds(app, after.id) == 0
    assert_audit_clean(app)


async def test_a_5xx_after_sending_is_settled_by_the_status_callback_without_a_resend(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks, clock: FixedClock
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    twilio.api.answer_500_after_create()
    sender = twilio_sender(twilio, callbacks.public_url)
    work = worker(app, messages=sender)
    try:
        await work.run_once()
        assert row(app, sent.notification.id).status is DeliveryStatus.UNKNOWN
        [message] = twilio.api.messages.values()
        assert await twilio.api.progress(message.sid, "delivered") == 204
        clock.advance(timedelta(minutes=5))
        await work.run_once()
    finally:
        await sender.close()

    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.DELIVERED
    assert after.provider_id == message.sid
    assert len(twilio.api.creates()) == 1
    assert_audit_clean(app)


@pytest.mark.parametrize(
    ("code", "reason_text"),
    [
        (21211, "o número de telefone é inválido"),
        (21614, "o número não é de celular"),
        (21408, "o envio para o país deste número não está habilitado"),
        (21610, "o signatário pediu para não receber mensagens deste remetente"),
    ],
)
async def test_a_permanent_twilio_refusal_fails_at_once_refunds_once_and_tells_the_owner(
    app: App, twilio: TwilioApiServer, code: int, reason_text: str
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id,
        sealed.envelope_id,
        sealed.maria_id,
        Channel.SMS,
        "tap-1",
    )
    twilio.api.refuse_number(MARIA, code)
    owner = Owner()
    sender = twilio_sender(twilio, "https://lacre.example.com")
    work = worker(app, messages=sender, messenger=owner)
    try:
        await work.run_once()
        await work.run_once()  # nothing more happens
    finally:
        await sender.close()

    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.FAILED
    assert after.error_code == str(code)
    assert len(twilio.api.creates()) == 1
    assert refunds(app, after.id) == 1
    assert app.lacre.balances(sealed.seeded.account.id).notification_credits == 5
    [notice] = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    assert "Maria Souza" in notice and "(11) 98765-4321" in notice
    assert "Canal: SMS" in notice and reason_text in notice
    assert "1 crédito de notificação foi devolvido" in notice
    assert "Contrato de locação" in notice
    assert_audit_clean(app)


async def test_a_landline_is_refused_before_any_charge(app: App) -> None:
    seeded = seed_account(app, credits=10)
    landline = envelope_json(
        signers=[
            {
                "name": "Escritório",
                "email": "escritorio@example.com",
                "phone": "(11) 3333-4444",
                "order": 0,
                "status": "pendente",
            }
        ]
    )
    env_id = import_envelopes(app, seeded.account.id, landline)["ENV-1001"]
    app.lacre.seal(seeded.admin.id, env_id)
    signer = app.lacre.envelope(seeded.admin.id, env_id).signers[0]
    assert signer.id is not None
    before, entries = app.lacre.balances(seeded.account.id), ledger_size(app)

    for channel in (Channel.SMS, Channel.WHATSAPP):
        with pytest.raises(ChannelUnavailable) as refused:
            app.lacre.request_send(seeded.admin.id, env_id, signer.id, channel, f"tap-{channel}")
        assert refused.value.data["reason"] == "not_mobile"

    assert app.lacre.balances(seeded.account.id) == before
    assert ledger_size(app) == entries
    with app.uow(write=False) as uow:
        assert all(n.channel is Channel.EMAIL for n in uow.notifications.for_envelope(env_id))
    assert_audit_clean(app)


async def test_a_number_of_a_country_not_allowed_is_refused_before_any_charge(app: App) -> None:
    seeded = seed_account(app, credits=10)
    abroad = envelope_json(
        signers=[
            {
                "name": "John Doe",
                "email": "john@example.com",
                "phone": "+1 202 555 0143",
                "order": 0,
                "status": "pendente",
            }
        ]
    )
    env_id = import_envelopes(app, seeded.account.id, abroad)["ENV-1001"]
    app.lacre.seal(seeded.admin.id, env_id)
    signer = app.lacre.envelope(seeded.admin.id, env_id).signers[0]
    assert signer.id is not None
    before, entries = app.lacre.balances(seeded.account.id), ledger_size(app)

    with pytest.raises(ChannelUnavailable) as refused:
        app.lacre.request_send(seeded.admin.id, env_id, signer.id, Channel.SMS, "tap-1")

    assert refused.value.data == {"reason": "country", "region": "US"}
    assert app.lacre.balances(seeded.account.id) == before
    assert ledger_size(app) == entries
    assert_audit_clean(app)


@pytest.mark.parametrize("phone", ["98765-4321", "(11) 8765-432", "(00) 98765-4321", "telefone"])
async def test_an_invalid_number_never_reaches_a_signer_so_nothing_is_charged(
    app: App, phone: str
) -> None:
    seeded = seed_account(app, credits=10)
    before, entries = app.lacre.balances(seeded.account.id), ledger_size(app)
    bad = envelope_json(
        signers=[
            {
                "name": "Maria Souza",
                "email": "maria@example.com",
                "phone": phone,
                "order": 0,
                "status": "pendente",
            }
        ]
    )
    with pytest.raises(InvalidInput) as refused:
        import_envelopes(app, seeded.account.id, bad)

    assert "phone" in str(refused.value)
    with app.uow(write=False) as uow:
        assert uow.envelopes.get_by_ref(seeded.account.id, "ENV-1001") is None
    assert app.lacre.balances(seeded.account.id) == before
    assert ledger_size(app) == entries
    assert_audit_clean(app)


async def test_a_send_whose_signer_signed_meanwhile_is_not_sent_and_is_refunded(
    app: App, twilio: TwilioApiServer
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.WHATSAPP, "tap-1"
    )
    app.lacre.record_signature("ENV-1001", "maria@example.com")
    owner = Owner()
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender, messenger=owner).run_once()
    finally:
        await sender.close()

    assert twilio.api.creates() == []
    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.FAILED
    assert refunds(app, after.id) == 1
    [notice] = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    assert "Canal: WhatsApp" in notice and "assinado" in notice
    assert_audit_clean(app)


async def test_logs_mask_phones_and_addresses_and_never_show_the_auth_token(
    app: App, twilio: TwilioApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sealed = sealed_envelope(app)
    app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.WHATSAPP, "tap-2"
    )
    twilio.api.fail_next_create(429, 20429)
    sender = twilio_sender(twilio, "https://lacre.example.com")
    try:
        await worker(app, messages=sender).run_once()
    finally:
        await sender.close()

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "+5511*******21" in logged  # masked, yet recognisable
    assert MARIA not in logged and MARIA[1:] not in logged
    assert twilio.api.auth_token not in logged
    assert "maria@example.com" not in logged
