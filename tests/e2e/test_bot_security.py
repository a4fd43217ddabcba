"""Forged taps, other accounts' ids, members, groups, double taps and racing link tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from bot.bootstrap import App
from core.accounts import Role, User
from core.browse import Browse
from core.confirmations import Confirmations
from core.errors import DomainError
from core.notifications import Channel
from tests.support.bot_flows import person, snapshot
from tests.support.bot_harness import running_bot
from tests.support.builders import Seeded, envelope_json, import_envelopes, seed_account


def two_accounts(app: App) -> tuple[Seeded, Seeded, dict[str, int], dict[str, int]]:
    a = seed_account(app, name="Conta A", credits=10)
    b = seed_account(app, name="Conta B", credits=10)
    a_ids = import_envelopes(app, a.account.id, envelope_json("A-1"))
    b_ids = import_envelopes(
        app,
        b.account.id,
        envelope_json("B-DRAFT"),
        envelope_json("B-PEND"),
        envelope_json("B-MEM", created_by=b.member.id),
    )
    app.lacre.seal(b.admin.id, b_ids["B-PEND"])
    return a, b, a_ids, b_ids


async def test_every_callback_replayed_with_another_accounts_ids_is_not_found(
    app: App,
) -> None:
    a, b, a_ids, b_ids = two_accounts(app)
    draft, pend = b_ids["B-DRAFT"], b_ids["B-PEND"]
    b_signer = app.lacre.envelope(b.admin.id, pend).signers[0].id
    a_env = app.lacre.envelope(a.admin.id, a_ids["A-1"])
    forged = [
        f"env:{draft}",
        f"env:{pend}",
        *(
            f"env:{eid}:{act}"
            for eid in (draft, pend)
            for act in ("seal", "block", "unblock", "cancel", "resend")
        ),
        f"rsa:{pend}",
        f"sg:{pend}:{b_signer}",
        *(f"rsc:{pend}:{b_signer}:{ch}" for ch in ("email", "sms", "whatsapp")),
        # A's own envelope with B's signer: the signer is not found either.
        f"rsc:{a_env.id}:{b_signer}:sms",
        f"sg:{a_env.id}:{b_signer}",
    ]
    ana = person(a.admin)
    before = snapshot(app)
    async with running_bot(app) as bot:
        anchor = await bot.say(ana, "/envelopes")
        shown = anchor.html
        for data in forged:
            answer = await bot.tap(ana, anchor, data)
            assert answer.show_alert and "não encontrado" in (answer.text or ""), data
        assert anchor.html == shown and len(bot.api.bot_messages(ana.id)) == 1
        assert "B-" not in " ".join(m.html for m in bot.api.messages(ana.id))
    assert snapshot(app) == before


async def test_a_member_cannot_see_or_act_on_an_admins_envelope(sqlite_app: App) -> None:
    _a, b, _a_ids, b_ids = two_accounts(sqlite_app)
    bruno = person(b.member)
    before = snapshot(sqlite_app)
    async with running_bot(sqlite_app) as bot:
        anchor = await bot.say(bruno, "/envelopes")
        for data in (
            f"env:{b_ids['B-DRAFT']}",
            f"env:{b_ids['B-DRAFT']}:seal",
            f"rsa:{b_ids['B-PEND']}",
            f"env:{b_ids['B-PEND']}:cancel",
        ):
            answer = await bot.tap(bruno, anchor, data)
            assert "não encontrado" in (answer.text or ""), data
        own = await bot.tap(bruno, anchor, f"env:{b_ids['B-MEM']}")
        assert own.text is None and "B-MEM" in anchor.text
    assert snapshot(sqlite_app) == before


async def test_someone_elses_confirmation_nonce_is_not_found_and_stays_usable(
    sqlite_app: App,
) -> None:
    a, b, _a_ids, b_ids = two_accounts(sqlite_app)
    beto, ana, bruno = person(b.admin), person(a.admin), person(b.member)
    async with running_bot(sqlite_app) as bot:
        card = await bot.say(beto, "/envelopes")
        await bot.tap(beto, card, f"env:{b_ids['B-DRAFT']}:seal")
        nonce_data = card.button("Confirmar")["callback_data"]
        before = snapshot(sqlite_app)
        for thief in (ana, bruno):
            anchor = await bot.say(thief, "/envelopes")
            for data in (nonce_data, "no:" + nonce_data.removeprefix("ok:")):
                answer = await bot.tap(thief, anchor, data)
                assert answer.show_alert and "Confirmação não encontrada" in (answer.text or "")
        assert snapshot(sqlite_app) == before
        await bot.tap(beto, card, nonce_data)
        assert "Envelope lacrado" in card.text
    assert sqlite_app.lacre.balances(b.account.id).credits == 40 - 3 - 3  # B-PEND and this one


@pytest.mark.parametrize(
    "data",
    [
        "env:1:delete",
        "env:01",
        "env:1:seal:x",
        "ok:../../etc/passwd",
        "ok:" + "A" * 60,
        "rsc:1:1:fax",
        "ls:pen:-1",
        "ls:xx:0",
        "hs:1e9",
        "lang:de",
        "mute:1",
        "drop table",
        "🙂",
        "x" * 64,
    ],
)
async def test_forged_and_malformed_callback_data_changes_nothing(
    sqlite_app: App, data: str
) -> None:
    a, _b, _a_ids, _b_ids = two_accounts(sqlite_app)
    ana = person(a.admin)
    before = snapshot(sqlite_app)
    async with running_bot(sqlite_app) as bot:
        anchor = await bot.say(ana, "/envelopes")
        shown = anchor.html
        answer = await bot.tap(ana, anchor, data)
        assert answer.show_alert and "não é válido" in (answer.text or "")
        assert anchor.html == shown
    assert snapshot(sqlite_app) == before


async def test_two_taps_on_confirmar_at_the_same_moment_charge_once(app: App) -> None:
    seeded = seed_account(app, credits=10)
    env_id = import_envelopes(app, seeded.account.id, envelope_json())["ENV-1001"]
    ana = person(seeded.admin)
    async with running_bot(app, concurrent_updates=8, threaded=True) as bot:
        card = await bot.say(ana, "/envelopes")
        await bot.tap(ana, card, f"env:{env_id}:seal")
        data = card.button("Confirmar")["callback_data"]
        first, second = bot.api.tap(ana, card, data), bot.api.tap(ana, card, data)
        answers = [await bot.api.answered(first), await bot.api.answered(second)]
        assert sorted(a.text or "" for a in answers)[-1] == "Feito."
    assert app.lacre.balances(seeded.account.id).credits == 40 - 3
    with app.uow(write=False) as uow:
        assert len(uow.ledger.history(seeded.account.id, 50, 0)) == 4  # 2 grants, seed, seal


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n threads released at the same instant; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except DomainError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_eight_racing_confirmations_of_one_paid_send_charge_once(app: App) -> None:
    seeded = seed_account(app, credits=10)
    env_id = import_envelopes(app, seeded.account.id, envelope_json())["ENV-1001"]
    app.lacre.seal(seeded.admin.id, env_id)
    maria = app.lacre.envelope(seeded.admin.id, env_id).signers[0].id
    assert maria is not None
    confirmations = Confirmations(app.uow, app.lacre, app.clock)  # type: ignore[arg-type]
    proposal = confirmations.propose_send(
        seeded.admin.id,
        env_id,
        maria,
        Channel.SMS,
    )
    nonce = proposal.confirmation.nonce
    results = race(8, lambda _i: confirmations.confirm(seeded.admin.id, nonce))
    done = [r for r in results if not isinstance(r, DomainError)]
    assert len(done) == 1
    assert all(r.data.get("reason") == "used" for r in results if isinstance(r, DomainError))
    assert app.lacre.balances(seeded.account.id).notification_credits == 5 - 1


def test_a_link_token_used_twice_at_the_same_moment_links_once(app: App) -> None:
    account = app.lacre.create_account("Sol", "essencial")
    token = app.lacre.create_link_token(account.id, Role.ADMIN)
    results = race(6, lambda i: app.lacre.link(token, 880_000 + i, f"Pessoa {i}"))
    linked = [r for r in results if isinstance(r, User)]
    assert len(linked) == 1
    assert all(
        getattr(r, "code", "") in ("link_token_invalid", "conflict") or isinstance(r, User)
        for r in results
    )
    with app.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM users WHERE account_id = :a"), {"a": account.id}
            ).scalar_one()
            == 1
        )


def test_the_browse_use_case_refuses_unlinked_users(sqlite_app: App) -> None:
    seeded = seed_account(sqlite_app)
    sqlite_app.lacre.unlink(seeded.admin.telegram_user_id or 0)
    browse = Browse(sqlite_app.uow, sqlite_app.lacre, sqlite_app.clock, sqlite_app.lacre.catalogue)  # type: ignore[arg-type]
    with pytest.raises(DomainError, match="not linked"):
        browse.balance(seeded.admin.id)
