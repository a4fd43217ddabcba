"""The `lacre` command line: admin commands (each with --json), `run`, `demo`, `db upgrade`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.bootstrap import App, bootstrap
from bot.settings import Settings
from core.accounts import Role
from core.errors import DomainError
from core.importing import parse_import
from storage import migrate
from storage.audit import audit
from storage.db import refresh_statistics

# Envelopes created or updated by one import from which PostgreSQL's statistics are refreshed
# at once rather than by autovacuum a minute later (storage.db.refresh_statistics).
ANALYZE_AFTER = 500


class CliError(Exception):
    """A refusal at the command line: printed without a traceback, exit code 1."""

    def __init__(self, message: str, code: str = "error", **data: Any) -> None:
        super().__init__(message)
        self.code, self.data = code, data


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(_jsonable(data), ensure_ascii=False, indent=2))
    else:
        print(human)


def _ready(args: argparse.Namespace, settings: Settings) -> App:
    app = bootstrap(settings)
    # Closed when the command ends: `main` is also called in-process (tests, the sandbox).
    args.cleanup.callback(app.engine.dispose)
    if not migrate.is_current(app.engine):
        raise CliError(
            "the database is not up to date: run `lacre db upgrade` first", code="not_migrated"
        )
    return app


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.database_url)
    heads = sorted(migrate.head_revisions())
    where = _safe_url(settings.database_url)
    _emit(
        args,
        {"database": where, "revisions": heads},
        f"database {where} at revision {', '.join(heads)}",
    )
    return 0


def cmd_account_create(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    account = app.lacre.create_account(
        args.name, args.plan, args.timezone or settings.default_timezone
    )
    _emit(
        args,
        {"account": account},
        f"account {account.id} created: {account.name} ({account.plan_code}, "
        f"{account.timezone}); credits {account.credits}, notification credits "
        f"{account.notification_credits}",
    )
    return 0


def cmd_account_link(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    token = app.lacre.create_link_token(args.account_id, Role(args.role))
    link = (
        f"https://t.me/{settings.telegram_bot_username}?start={token}"
        if settings.telegram_bot_username
        else None
    )
    human = [f"one-time link for account {args.account_id} as {args.role}, valid 15 minutes:"]
    human.append(link or f"send the bot: /start {token}")
    _emit(
        args,
        {
            "account_id": args.account_id,
            "role": args.role,
            "token": token,
            "link": link,
            "expires_in_seconds": 900,
        },
        "\n".join(human),
    )
    return 0


def cmd_credits_grant(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    balances = app.lacre.grant(
        args.account_id,
        credits=args.credits,
        notification_credits=args.notification_credits,
        reason=args.reason or "",
    )
    _emit(
        args,
        {"account_id": args.account_id, "balances": balances},
        f"account {args.account_id}: credits {balances.credits}, notification credits "
        f"{balances.notification_credits}",
    )
    return 0


def cmd_credits_show(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    balances = app.lacre.balances(args.account_id)
    _emit(
        args,
        {"account_id": args.account_id, "balances": balances},
        f"account {args.account_id}: credits {balances.credits}, notification credits "
        f"{balances.notification_credits}",
    )
    return 0


def cmd_envelopes_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", code="file") from exc
    app = _ready(args, settings)
    result = app.lacre.import_envelopes(parse_import(raw, app.lacre.phones))
    if len(result.created) + len(result.updated) >= ANALYZE_AFTER:
        refresh_statistics(app.engine)
    _emit(
        args,
        {"created": result.created, "updated": result.updated, "unchanged": result.unchanged},
        f"imported: {len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged",
    )
    return 0


def cmd_signer_sign(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    env = app.lacre.record_signature(args.ref, args.email, args.account)
    _emit(
        args,
        {"ref": env.ref, "status": env.status.value},
        f"{env.ref}: signature recorded; envelope is {env.status.value}",
    )
    return 0


def cmd_ledger_audit(args: argparse.Namespace, settings: Settings) -> int:
    app = _ready(args, settings)
    with app.engine.connect() as conn:
        violations = audit(conn)
    _emit(
        args,
        {"ok": not violations, "violations": violations},
        "ledger audit: every invariant holds"
        if not violations
        else "\n".join(
            [f"ledger audit: {len(violations)} violation(s)"]
            + [f"  invariant {v.invariant} ({v.check}): {v.detail}" for v in violations]
        ),
    )
    return 1 if violations else 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.runner import run

    return run(settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.sandbox.demo import demo

    # The sandbox configures itself: no token, no network, its own database file.
    return demo(port=args.port, reset=args.reset)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return number


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lacre", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def leaf(
        group: Any, name: str, handler: Callable[..., int], help_: str, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(name, help=help_, description=help_)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)
        return p

    demo = leaf(
        sub,
        "demo",
        cmd_demo,
        "local sandbox: no token, no network, seeded demo data",
        json_flag=False,
    )
    demo.add_argument("--port", type=_positive, default=8080)
    demo.add_argument("--reset", action="store_true", help="re-seed the demo database")
    leaf(sub, "run", cmd_run, "the bot, HTTP app, outbox worker and scheduler", json_flag=False)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    leaf(db, "upgrade", cmd_db_upgrade, "apply migrations")

    account = sub.add_parser("account", help="accounts").add_subparsers(dest="sub", required=True)
    create = leaf(account, "create", cmd_account_create, "create an account")
    create.add_argument("--name", required=True)
    create.add_argument("--plan", default="essencial")
    create.add_argument("--timezone", default=None)
    link = leaf(account, "link", cmd_account_link, "one-time deep link for /start")
    link.add_argument("account_id", type=_positive)
    link.add_argument("--role", choices=[r.value for r in Role], default=Role.MEMBER.value)

    credits = sub.add_parser("credits", help="balances").add_subparsers(dest="sub", required=True)
    grant = leaf(credits, "grant", cmd_credits_grant, "add credits to an account")
    grant.add_argument("account_id", type=_positive)
    grant.add_argument("--credits", type=_non_negative, default=0)
    grant.add_argument("--notification-credits", type=_non_negative, default=0)
    grant.add_argument("--reason", default="")
    show = leaf(credits, "show", cmd_credits_show, "show both balances")
    show.add_argument("account_id", type=_positive)

    envs = sub.add_parser("envelopes", help="envelopes").add_subparsers(dest="sub", required=True)
    imp = leaf(envs, "import", cmd_envelopes_import, "import envelopes (idempotent by ref)")
    imp.add_argument("file")

    signer = sub.add_parser("signer", help="signers").add_subparsers(dest="sub", required=True)
    sign = leaf(signer, "sign", cmd_signer_sign, "record a signature (platform event)")
    sign.add_argument("ref")
    sign.add_argument("email")
    sign.add_argument("--account", type=_positive, default=None)

    ledger = sub.add_parser("ledger", help="ledger").add_subparsers(dest="sub", required=True)
    leaf(ledger, "audit", cmd_ledger_audit, "exit 1 if any invariant is broken")
    return parser


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """Entry point of the `lacre` script; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    wants_json = getattr(args, "json", False)
    try:
        settings = settings or Settings()
        with contextlib.ExitStack() as args.cleanup:
            code: int = args.handler(args, settings)
        return code
    except (DomainError, CliError) as exc:
        data = exc.data
        if wants_json:
            print(
                json.dumps(
                    {"error": {"code": exc.code, "message": str(exc), "data": _jsonable(data)}},
                    ensure_ascii=False,
                )
            )
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
