"""Small builders for test data, going through the real use cases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from bot.bootstrap import App
from core.accounts import Account, Role, User
from core.importing import parse_import

_telegram_ids = itertools.count(10_000)


@dataclass
class Seeded:
    account: Account
    admin: User
    member: User


def linked_user(app: App, account_id: int, role: Role = Role.ADMIN, name: str = "Ana") -> User:
    token = app.lacre.create_link_token(account_id, role)
    return app.lacre.link(token, next(_telegram_ids), name)


def seed_account(
    app: App,
    *,
    name: str = "Imobiliária Sol",
    plan: str = "essencial",
    credits: int = 0,
    notification_credits: int = 0,
) -> Seeded:
    account = app.lacre.create_account(name, plan)
    if credits or notification_credits:
        app.lacre.grant(
            account.id,
            credits=credits,
            notification_credits=notification_credits,
            idempotency_key=f"seed:{account.id}",
        )
    return Seeded(
        account,
        linked_user(app, account.id, Role.ADMIN, "Ana Admin"),
        linked_user(app, account.id, Role.MEMBER, "Bruno Membro"),
    )


def envelope_json(ref: str = "ENV-1001", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ref": ref,
        "title": "Contrato de locação",
        "description": "Apartamento 12",
        "status": "rascunho",
        "icp": False,
        "ordered": False,
        "expires_at": "2026-12-10T18:00:00-03:00",
        "credits": 3,
        "documents": [{"name": "contrato.pdf", "pages": 4}],
        "signers": [
            {
                "name": "Maria Souza",
                "email": "maria@example.com",
                "phone": "(11) 98765-4321",
                "order": 0,
                "status": "pendente",
            },
            {"name": "João Lima", "email": "joao@example.com", "order": 0, "status": "pendente"},
        ],
    }
    data.update(overrides)
    return data


def import_envelopes(app: App, account_id: int, *envelopes: dict[str, Any]) -> dict[str, int]:
    """Import and return {ref: envelope id}."""
    app.lacre.import_envelopes(
        parse_import({"account_id": account_id, "envelopes": list(envelopes)}, app.lacre.phones)
    )
    with app.uow(write=False) as uow:
        out = {}
        for e in envelopes:
            found = uow.envelopes.get_by_ref(account_id, e["ref"])
            assert found is not None and found.id is not None
            out[e["ref"]] = found.id
        return out
