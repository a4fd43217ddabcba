"""Twilio status callbacks through the real HTTP app: signatures, repeats, order, refunds."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from sqlalchemy import text

from bot.bootstrap import App
from bot.http.app import TwilioStatusConfig, build_http_app
from bot.http.server import HttpServer
from bot.sandbox.twilio_api import FakeTwilio, TwilioApiServer
from core.notifications import Channel, DeliveryStatus
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory
from tests.support.delivery import (
    Callbacks,
    Owner,
    Sealed,
    assert_audit_clean,
    callbacks,
    free_port,
    no_retry_waits,
    refunds,
    row,
    sealed_envelope,
    twilio,
    twilio_sender,
    worker,
)

__all__ = ["callbacks", "no_retry_waits", "twilio"]  # fixtures used by name


async def _sent(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks, channel: Channel
) -> tuple[Sealed, int, str]:
    """A sealed envelope and one paid send that Twilio accepted: (sealed, row id, SID)."""
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, channel, "tap-1"
    )
    sender = twilio_sender(twilio, callbacks.public_url)
    try:
        await worker(app, messages=sender).run_once()
    finally:
        await sender.close()
    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.SENT and after.provider_id
    return sealed, after.id, after.provider_id


def _stored_callbacks(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM delivery_callbacks")).scalar_one())


async def test_a_callback_with_a_bad_or_missing_signature_gets_403_and_changes_nothing(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks
) -> None:
    _sealed, row_id, sid = await _sent(app, twilio, callbacks, Channel.SMS)
    fake = twilio.api

    assert await fake.fire_callback(sid, "failed", 30006, signature="bm90IGEgc2lnbmF0dXJl") == 403
    assert await fake.fire_callback(sid, "failed", 30006, signature="") == 403
    # Signed for the address behind a proxy instead of the public one Twilio called.
    behind_proxy = "http://10.0.0.7:8000/twilio/status"
    assert await fake.fire_callback(sid, "failed", 30006, signed_url=behind_proxy) == 403
    # Signed with another account's token.
    other = FakeTwilio(auth_token="someone-elses-token")
    forged = other.sign(
        callbacks.public_url + "/twilio/status", fake.callback_params(sid, "failed")
    )
    assert await fake.fire_callback(sid, "failed", signature=forged) == 403

    after = row(app, row_id)
    assert after.status is DeliveryStatus.SENT and after.error_code is None
    assert refunds(app, row_id) == 0
    assert _stored_callbacks(app) == 0
    assert callbacks.changes == 0
    assert_audit_clean(app)


async def test_a_signed_callback_without_a_message_sid_is_a_bad_request(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks
) -> None:
    url = callbacks.public_url + "/twilio/status"
    params = {"MessageStatus": "delivered", "AccountSid": twilio.api.account_sid}
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(
            url, data=params, headers={"X-Twilio-Signature": twilio.api.sign(url, params)}
        )
    assert answer.status_code == 400
    assert _stored_callbacks(app) == 0


@pytest.mark.parametrize(
    ("channel", "statuses", "final", "refunded", "told"),
    [
        # WhatsApp does not bill an undelivered message: the credit comes back, once.
        (Channel.WHATSAPP, ["queued", "sent", "undelivered"], DeliveryStatus.FAILED, 1, "↩️"),
        (Channel.SMS, ["sent", "failed"], DeliveryStatus.FAILED, 1, "↩️"),
        # The carrier bills an undelivered SMS: no refund, and the owner is told why.
        (Channel.SMS, ["sent", "undelivered"], DeliveryStatus.FAILED, 0, "cobrou"),
        (Channel.SMS, ["queued", "sent", "delivered"], DeliveryStatus.DELIVERED, 0, None),
        (Channel.WHATSAPP, ["sent", "delivered", "read"], DeliveryStatus.DELIVERED, 0, None),
    ],
)
async def test_callbacks_out_of_order_and_repeated_five_times_end_in_one_state_and_one_refund(
    app: App,
    twilio: TwilioApiServer,
    callbacks: Callbacks,
    channel: Channel,
    statuses: list[str],
    final: DeliveryStatus,
    refunded: int,
    told: str | None,
) -> None:
    sealed, row_id, sid = await _sent(app, twilio, callbacks, channel)
    storm = [s for s in statuses for _ in range(5)]
    random.Random(4).shuffle(storm)
    storm.sort(key=lambda s: s != statuses[-1])  # the last status arrives first, 5 times
    code = 30003 if final is DeliveryStatus.FAILED else None

    answers = await asyncio.gather(
        *(twilio.api.fire_callback(sid, s, code if s == statuses[-1] else None) for s in storm)
    )

    assert set(answers) == {204}
    after = row(app, row_id)
    assert after.status is final
    assert refunds(app, row_id) == refunded
    assert _stored_callbacks(app) == len(statuses)
    owner = Owner()
    await worker(app, messages=None, messenger=owner).send_notices()
    await worker(app, messages=None, messenger=owner).send_notices()
    notices = owner.to(sealed.seeded.admin.telegram_user_id or 0)
    if told is None:
        assert notices == []
    else:
        [notice] = notices
        assert told in notice
        assert "Maria Souza" in notice
    assert refunds(app, row_id) == refunded
    balance = app.lacre.balances(sealed.seeded.account.id).notification_credits
    assert balance == 5 - 1 + refunded
    assert_audit_clean(app)


async def test_a_callback_that_beats_the_create_answer_is_kept_and_applied_after_it(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks
) -> None:
    sealed = sealed_envelope(app)
    sent = app.lacre.request_send(
        sealed.seeded.admin.id, sealed.envelope_id, sealed.maria_id, Channel.SMS, "tap-1"
    )
    twilio.api.hang_after_create()
    sender = twilio_sender(twilio, callbacks.public_url)
    work = worker(app, messages=sender)
    try:
        first = asyncio.create_task(work.run_once())
        messages = await twilio.api.wait_for(lambda: list(twilio.api.messages.values()))
        assert await twilio.api.progress(messages[0].sid, "delivered") == 204
        assert row(app, sent.notification.id).status is DeliveryStatus.SENDING
        twilio.api.release()
        await first
    finally:
        await sender.close()

    after = row(app, sent.notification.id)
    assert after.status is DeliveryStatus.DELIVERED
    assert after.provider_id == messages[0].sid
    assert len(twilio.api.creates()) == 1
    assert_audit_clean(app)


async def test_a_callback_for_a_message_lacre_never_sent_is_kept_and_changes_nothing(
    app: App, twilio: TwilioApiServer, callbacks: Callbacks
) -> None:
    _sealed, row_id, sid = await _sent(app, twilio, callbacks, Channel.SMS)
    url = callbacks.public_url + "/twilio/status"
    params = twilio.api.callback_params(sid, "delivered")
    params.update(MessageSid="SM" + "f" * 32, SmsSid="SM" + "f" * 32, To="+5521999990000")
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(
            url, data=params, headers={"X-Twilio-Signature": twilio.api.sign(url, params)}
        )
    assert answer.status_code == 204
    assert row(app, row_id).status is DeliveryStatus.SENT
    assert _stored_callbacks(app) == 1
    assert_audit_clean(app)


async def test_healthz_answers_ok_and_503_when_the_database_does_not(
    app: App, twilio: TwilioApiServer
) -> None:
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))
    healthy = {"db": True}
    http_app = build_http_app(
        outbox=outbox,
        lacre=app.lacre,
        clock=app.clock,
        twilio=TwilioStatusConfig(twilio.api.auth_token, "https://lacre.example.com"),
        health=lambda: healthy["db"],
    )
    server = HttpServer(http_app, "127.0.0.1", free_port())
    await server.start()
    try:
        async with httpx.AsyncClient(trust_env=False, base_url=server.url) as client:
            ok = await client.get("/healthz")
            healthy["db"] = False
            down = await client.get("/healthz")
    finally:
        await server.stop()
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert (down.status_code, down.json()) == (503, {"status": "unavailable"})
