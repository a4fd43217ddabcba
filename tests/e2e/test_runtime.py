"""`lacre run`'s whole process: Telegram, HTTP app, outbox worker and scheduler together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from bot.bootstrap import App, bootstrap
from bot.http.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH
from bot.runner import Runtime
from bot.sandbox.bot_api import BotApiServer, FakeBotApi, FakeUser
from bot.sandbox.twilio_api import FakeTwilio, TwilioApiServer
from core.accounts import Role
from core.clock import FixedClock
from storage.audit import audit
from tests.conftest import make_settings
from tests.support.builders import envelope_json, import_envelopes
from tests.support.delivery import Smtp, free_port

WEBHOOK_SECRET = "s3cret-webhook-token"


@dataclass
class Running:
    app: App
    api: FakeBotApi
    twilio: FakeTwilio
    runtime: Runtime
    http_url: str


@asynccontextmanager
async def running(
    db_url: str, clock: FixedClock, smtp: Smtp, *, mode: str = "polling"
) -> AsyncIterator[Running]:
    api = FakeBotApi()
    bot_server = BotApiServer(api)
    await bot_server.start()
    twilio = FakeTwilio(clock=clock.now, auto_progress=("sent", "delivered"), auto_delay=0.01)
    twilio_server = TwilioApiServer(twilio)
    await twilio_server.start()
    port = free_port()
    settings = make_settings(
        db_url,
        telegram_bot_token=api.token,
        telegram_api_base_url=bot_server.base_url,
        telegram_mode=mode,
        telegram_webhook_secret=WEBHOOK_SECRET,
        public_base_url=f"http://127.0.0.1:{port}",
        http_port=port,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_sms_from="+15005550006",
        twilio_api_base_url=twilio_server.base_url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        outbox_poll_seconds=0.05,
    )
    app = bootstrap(settings, clock=clock)
    runtime = Runtime(app, scheduler_interval=3600, poll_timeout=1)
    await runtime.start()
    try:
        yield Running(app, api, twilio, runtime, f"http://127.0.0.1:{port}")
    finally:
        await runtime.stop()
        await twilio_server.stop()
        await bot_server.stop()
        app.engine.dispose()


async def test_a_linked_owner_seals_and_the_signers_get_their_emails(
    db_url: str, clock: FixedClock, smtp: Smtp
) -> None:
    async with running(db_url, clock, smtp) as r:
        runtime = r.runtime
        # On a SQLite file the WAL is checkpointed by a thread of its own (decision 0009).
        assert runtime.checkpoints.running is (r.app.engine.dialect.name == "sqlite")
        account = r.app.lacre.create_account("Imobiliária Sol", "essencial")
        env_id = import_envelopes(r.app, account.id, envelope_json())["ENV-1001"]
        token = r.app.lacre.create_link_token(account.id, Role.ADMIN)
        ana = FakeUser(424242, "Ana", language_code="pt-br")
        r.api.send_text(ana, f"/start {token}")
        await r.api.wait_for(lambda: len(r.api.bot_messages(ana.id)) >= 1)
        assert r.api.commands, "the command menus were registered at start"
        card_before = len(r.api.bot_messages(ana.id))
        r.api.send_text(ana, "/envelopes")
        await r.api.wait_for(lambda: len(r.api.bot_messages(ana.id)) > card_before)
        listing = r.api.last_bot_message(ana.id)
        await r.api.answered(r.api.tap(ana, listing, f"env:{env_id}:seal"))
        confirm = r.api.last_bot_message(ana.id)
        assert "Custo: 3 créditos" in confirm.text
        await r.api.answered(r.api.press(ana, confirm, "Confirmar"))
        await r.api.wait_for(lambda: len(smtp.sink.messages) == 2, within=10)
        recipients = sorted(str(m["To"]) for m in smtp.sink.messages)
        assert [r.split("<")[-1].rstrip(">") for r in recipients] == [
            "joao@example.com",
            "maria@example.com",
        ]
        assert r.app.lacre.balances(account.id).credits == 30 - 3
        with r.app.engine.connect() as conn:
            assert audit(conn) == []
    assert not runtime.checkpoints.running
    if runtime.checkpoints.applies:
        assert runtime.checkpoints.passes >= 1  # its last pass, at the latest


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_webhook_mode_refuses_updates_without_the_secret_and_serves_those_with_it(
    db_url: str, clock: FixedClock, smtp: Smtp
) -> None:
    async with running(db_url, clock, smtp, mode="webhook") as r:
        assert r.api.webhook == {
            "url": f"{r.http_url}{WEBHOOK_PATH}",
            "secret_token": WEBHOOK_SECRET,
        }
        # The fake Bot API writes the update as Telegram would; here it is pushed, not polled.
        r.api.keep_updates = True
        r.api.send_text(FakeUser(777, "Eva"), "/ajuda")
        update = {"update_id": 1, **r.api.injected[-1]}
        async with httpx.AsyncClient(base_url=r.http_url, trust_env=False) as client:
            missing = await client.post(WEBHOOK_PATH, json=update)
            forged = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: "x"})
            assert (missing.status_code, forged.status_code) == (403, 403)
            assert r.api.bot_messages(777) == []
            good = await client.post(
                WEBHOOK_PATH, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET}
            )
            assert good.status_code == 200
            await r.api.wait_for(lambda: len(r.api.bot_messages(777)) == 1)
            assert "/start" in r.api.bot_messages(777)[0].text
            health = await client.get("/healthz")
            assert health.json() == {"status": "ok"}
