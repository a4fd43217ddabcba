"""What the bot's flow tests share: the Telegram side of a seeded user, envelopes in a state,
and what a tap could change, to compare before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from bot.bootstrap import App
from bot.sandbox.bot_api import FakeUser
from core.accounts import User
from tests.support.builders import Seeded, envelope_json, import_envelopes


def person(user: User, language: str | None = "pt-br") -> FakeUser:
    """The Telegram user a linked user writes as."""
    assert user.telegram_user_id is not None
    return FakeUser(user.telegram_user_id, user.name.split()[0], language)


def balances(app: App, seeded: Seeded) -> tuple[int, int]:
    b = app.lacre.balances(seeded.account.id)
    return b.credits, b.notification_credits


def pending_envelope(app: App, seeded: Seeded, ref: str = "ENV-1001", **extra: object) -> int:
    env_id = import_envelopes(app, seeded.account.id, envelope_json(ref, **extra))[ref]
    app.lacre.seal(seeded.admin.id, env_id)
    return env_id


def signer_id(app: App, seeded: Seeded, env_id: int, email: str) -> int:
    found = app.lacre.envelope(seeded.admin.id, env_id).signer_by_email(email).id
    assert found is not None
    return found


def snapshot(app: App) -> dict[str, Any]:
    """Everything a tap could change: balances, statuses, outbox, ledger, confirmations."""
    with app.engine.connect() as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(text(sql))]

        return {
            "accounts": rows("SELECT id, credits, notification_credits FROM accounts ORDER BY id"),
            "envelopes": rows("SELECT id, status, version FROM envelopes ORDER BY id"),
            "signers": rows("SELECT id, status FROM signers ORDER BY id"),
            "notifications": rows("SELECT id, status FROM notifications ORDER BY id"),
            "ledger": rows("SELECT id FROM ledger_entries ORDER BY id"),
            "confirmations": rows("SELECT nonce, used_at FROM bot_confirmations ORDER BY nonce"),
        }
