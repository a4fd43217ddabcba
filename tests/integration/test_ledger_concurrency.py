"""Many concurrent writers sealing and charging on one database: nothing is paid twice or overdrawn.

Sixteen threads share one `App` (one engine, a connection each) and make 10,000 seal and charge
attempts, most keys tried several times (double taps land side by side, replays come later).
One account is rich; the other runs out of credits on purpose.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from bot.bootstrap import App
from core.errors import InsufficientCredits
from core.ledger import Pool, Reason
from core.services import SealResult
from storage.audit import audit
from tests.support.builders import envelope_json, import_envelopes, seed_account

WORKERS = 16
ATTEMPTS = 10_000
SEED = 20261127

# (account, attempts, distinct targets) per kind; every attempt past a target's first repeats it.
RICH_SEALS, RICH_ENVELOPES = 1_000, 350
POOR_SEALS, POOR_ENVELOPES = 800, 250
RICH_CHARGES, RICH_KEYS = 4_200, 2_800
POOR_CHARGES, POOR_KEYS = 4_000, 2_700
RICH_SEAL_COST, POOR_SEAL_COST = 2, 1
POOR_BALANCE = 1_200  # far less than the poor account's 2,950 distinct one-credit requests


@dataclass(frozen=True)
class Op:
    kind: str  # "seal" or "charge"
    account: str  # "rich" or "poor"
    target: int | str  # envelope id or charge key
    amount: int = 0  # charges only


@dataclass
class Outcomes:
    """What each attempt returned, gathered from every worker."""

    seals: dict[int, list[SealResult]] = field(default_factory=lambda: defaultdict(list))
    charges: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    refused: Counter[int | str] = field(default_factory=Counter)
    errors: list[tuple[Op, BaseException]] = field(default_factory=list)


def plan(
    rng: random.Random, rich_envs: list[int], poor_envs: list[int]
) -> tuple[list[Op], dict[str, int]]:
    """10,000 attempts: each target's repeats side by side (double taps), a tenth moved later."""
    groups: list[list[Op]] = []
    amounts: dict[str, int] = {}

    def spread(ops: list[Op], attempts: int) -> None:
        counts = [1] * len(ops)
        for _ in range(attempts - len(ops)):
            counts[rng.randrange(len(ops))] += 1
        groups.extend([op] * n for op, n in zip(ops, counts, strict=True))

    spread([Op("seal", "rich", e) for e in rich_envs], RICH_SEALS)
    spread([Op("seal", "poor", e) for e in poor_envs], POOR_SEALS)
    rich_keys = [Op("charge", "rich", f"icp:rich:{i}", rng.randint(1, 3)) for i in range(RICH_KEYS)]
    poor_keys = [Op("charge", "poor", f"icp:poor:{i}", 1) for i in range(POOR_KEYS)]
    amounts.update({str(op.target): op.amount for op in rich_keys + poor_keys})
    spread(rich_keys, RICH_CHARGES)
    spread(poor_keys, POOR_CHARGES)
    rng.shuffle(groups)
    ops = [op for group in groups for op in group]
    for _ in range(len(ops) // 10):  # replays: an attempt moved to a random later place
        i = rng.randrange(len(ops))
        ops.insert(rng.randrange(i, len(ops)), ops.pop(i))
    return ops, amounts


def run_workers(app: App, ops: list[Op], actors: dict[str, tuple[int, int]]) -> Outcomes:
    """Deal the attempts round robin, so neighbours (the double taps) run at the same time."""
    out = Outcomes()
    lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def work(mine: list[Op]) -> None:
        start.wait()
        for op in mine:
            account_id, user_id = actors[op.account]
            try:
                if op.kind == "seal":
                    assert isinstance(op.target, int)
                    result = app.lacre.seal(user_id, op.target)
                    with lock:
                        out.seals[op.target].append(result)
                else:
                    charged = app.lacre.charge(
                        account_id,
                        Pool.CREDITS,
                        op.amount,
                        Reason.ICP,
                        str(op.target),
                        actor_user_id=user_id,
                    )
                    with lock:
                        out.charges[str(op.target)].append(charged)
            except InsufficientCredits:
                with lock:
                    out.refused[op.target] += 1
            except Exception as exc:  # every other failure fails the test, with its attempt
                with lock:
                    out.errors.append((op, exc))

    threads = [
        threading.Thread(target=work, args=(ops[w::WORKERS],), name=f"ledger-worker-{w}")
        for w in range(WORKERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def envelopes_for(app: App, account_id: int, prefix: str, count: int, cost: int) -> list[int]:
    specs = [
        envelope_json(
            f"{prefix}-{i}",
            credits=cost,
            signers=[
                {"name": "Maria Souza", "email": "maria@example.com"},
                *([{"name": "João Lima", "email": "joao@example.com"}] if i % 2 else []),
            ],
        )
        for i in range(count)
    ]
    return list(import_envelopes(app, account_id, *specs).values())


def rows(app: App, sql: str, **params: Any) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def test_sixteen_writers_never_pay_twice_never_overdraw_and_stop_exactly_at_zero(
    app: App,
) -> None:
    rich = seed_account(app, name="Rica", credits=20_000)
    poor = seed_account(app, name="Pobre", plan="pessoa-fisica")
    # Bring the poor account to exactly POOR_BALANCE through the ledger, like any operator.
    start_poor = app.lacre.balances(poor.account.id).credits
    app.lacre.grant(poor.account.id, credits=POOR_BALANCE - start_poor, idempotency_key="top-up")
    start_rich = app.lacre.balances(rich.account.id).credits
    assert app.lacre.balances(poor.account.id).credits == POOR_BALANCE
    rich_envs = envelopes_for(app, rich.account.id, "RICA", RICH_ENVELOPES, RICH_SEAL_COST)
    poor_envs = envelopes_for(app, poor.account.id, "POBRE", POOR_ENVELOPES, POOR_SEAL_COST)

    ops, amounts = plan(random.Random(SEED), rich_envs, poor_envs)
    first_uses = len({(op.kind, op.target) for op in ops})
    assert len(ops) == ATTEMPTS
    assert (len(ops) - first_uses) / len(ops) >= 0.30  # repeated idempotency keys

    out = run_workers(
        app,
        ops,
        {"rich": (rich.account.id, rich.admin.id), "poor": (poor.account.id, poor.admin.id)},
    )

    assert out.errors == []
    answered = sum(map(len, out.seals.values())) + sum(map(len, out.charges.values()))
    assert answered + sum(out.refused.values()) == ATTEMPTS

    # Rich account: every envelope sealed once, every key charged once, nothing refused.
    assert not any(t in out.refused for t in [*rich_envs, *(k for k in amounts if "rich" in k)])
    for env_id in rich_envs:
        results = out.seals[env_id]
        assert [r.already_sealed for r in results].count(False) == 1
        assert sorted(r.charged for r in results) == [0] * (len(results) - 1) + [RICH_SEAL_COST]
    rich_keys = [k for k in amounts if k.startswith("icp:rich")]
    assert all(out.charges[k].count(True) == 1 for k in rich_keys)
    spent = RICH_SEAL_COST * RICH_ENVELOPES + sum(amounts[k] for k in rich_keys)
    rich_after = app.lacre.balances(rich.account.id).credits
    assert rich_after == start_rich - spent

    # Poor account: exactly as many one-credit successes as the balance allowed, then refusals.
    poor_keys = [k for k in amounts if k.startswith("icp:poor")]
    sealed = [e for e in poor_envs if any(not r.already_sealed for r in out.seals[e])]
    charged = [k for k in poor_keys if True in out.charges[k]]
    poor_after = app.lacre.balances(poor.account.id).credits
    assert (len(sealed) + len(charged), poor_after) == (POOR_BALANCE, 0)
    assert all([not r.already_sealed for r in out.seals[e]].count(True) == 1 for e in sealed)
    assert all(out.charges[k].count(True) == 1 for k in charged)
    refused_envs = [e for e in poor_envs if e not in sealed]
    refused_keys = [k for k in poor_keys if k not in charged]
    assert refused_envs and refused_keys
    assert all(out.refused[t] >= 1 for t in [*refused_envs, *refused_keys])
    # A refusal wrote nothing: no entry, the envelope still a draft, no e-mail queued.
    with app.uow(write=False) as uow:
        assert all(uow.ledger.by_key(k) is None for k in refused_keys)
        for env_id in refused_envs:
            env = uow.envelopes.get(env_id)
            assert env is not None and env.status.value == "rascunho"
            assert uow.ledger.by_key(f"seal:{env_id}") is None
            assert uow.notifications.for_envelope(env_id) == []

    # Both: the ledger holds one entry per paid key, with the amount that was asked for.
    entries = {
        key: amount
        for key, amount in rows(
            app, "SELECT idempotency_key, amount FROM ledger_entries WHERE amount < 0"
        )
    }
    assert all(k.startswith(("icp:", "seal:")) for k in entries)
    assert {k: -v for k, v in entries.items() if k.startswith("icp:")} == {
        k: amounts[k] for k in [*rich_keys, *charged]
    }
    assert {k for k in entries if k.startswith("seal:")} == {
        f"seal:{e}" for e in [*rich_envs, *sealed]
    }
    # Each sealed envelope queued one free request per signer, once; the others none.
    queued = rows(app, "SELECT envelope_id, signer_id FROM notifications")
    signers = rows(app, "SELECT envelope_id, id FROM signers")
    assert sorted(queued) == sorted((e, s) for e, s in signers if e in {*rich_envs, *sealed})

    # Never below zero, and each cached balance is the sum of its ledger entries.
    balances = rows(app, "SELECT id, credits, notification_credits FROM accounts")
    sums = Counter[tuple[int, str]]()
    for account_id, pool, amount in rows(
        app, "SELECT account_id, pool, amount FROM ledger_entries"
    ):
        sums[(account_id, pool)] += amount
    assert all(min(c, n) >= 0 for _, c, n in balances)
    assert all((c, n) == (sums[(a, "credits")], sums[(a, "notification")]) for a, c, n in balances)
    with app.engine.connect() as conn:
        assert audit(conn) == []
