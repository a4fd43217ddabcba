"""`lacre ledger audit`: every invariant of DOMAIN.md checked over the whole database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from core.ledger import PAID_REASONS, REASON_POOLS


@dataclass(frozen=True)
class Violation:
    invariant: int  # the number in DOMAIN.md's list
    check: str
    detail: str


_DEBIT_REASONS = ", ".join(f"'{r.value}'" for r in PAID_REASONS)

# (invariant, check name, SQL returning one row per violation, row formatter)
_CHECKS: list[tuple[int, str, str]] = [
    (
        1,
        "negative_balance",
        "SELECT id, credits, notification_credits FROM accounts "
        "WHERE credits < 0 OR notification_credits < 0",
    ),
    (
        3,
        "balance_equals_ledger_credits",
        "SELECT a.id, a.credits, COALESCE(SUM(l.amount), 0) FROM accounts a "
        "LEFT JOIN ledger_entries l ON l.account_id = a.id AND l.pool = 'credits' "
        "GROUP BY a.id, a.credits HAVING a.credits <> COALESCE(SUM(l.amount), 0)",
    ),
    (
        3,
        "balance_equals_ledger_notification",
        "SELECT a.id, a.notification_credits, COALESCE(SUM(l.amount), 0) FROM accounts a "
        "LEFT JOIN ledger_entries l ON l.account_id = a.id AND l.pool = 'notification' "
        "GROUP BY a.id, a.notification_credits "
        "HAVING a.notification_credits <> COALESCE(SUM(l.amount), 0)",
    ),
    (
        2,
        "seal_charged_once",
        "SELECT envelope_id, COUNT(*) FROM ledger_entries WHERE reason = 'seal' "
        "GROUP BY envelope_id HAVING COUNT(*) > 1",
    ),
    (
        2,
        "seal_charge_moved_envelope",
        "SELECT l.envelope_id, e.status FROM ledger_entries l JOIN envelopes e "
        "ON e.id = l.envelope_id WHERE l.reason = 'seal' AND e.status = 'rascunho'",
    ),
    (
        4,
        "paid_send_charged_once",
        "SELECT n.id, n.cost, COUNT(l.id), COALESCE(SUM(l.amount), 0) FROM notifications n "
        "LEFT JOIN ledger_entries l ON l.notification_id = n.id "
        "AND l.reason IN ('sms', 'whatsapp') "
        "WHERE n.cost > 0 GROUP BY n.id, n.cost "
        "HAVING COUNT(l.id) <> 1 OR COALESCE(SUM(l.amount), 0) <> -n.cost",
    ),
    (
        4,
        "free_send_never_charged",
        "SELECT n.id FROM notifications n JOIN ledger_entries l ON l.notification_id = n.id "
        "AND l.reason IN ('sms', 'whatsapp') WHERE n.cost = 0",
    ),
    (
        4,
        "refund_once_for_a_charge",
        "SELECT r.notification_id, COUNT(*), SUM(r.amount) FROM ledger_entries r "
        "WHERE r.reason = 'refund' GROUP BY r.notification_id "
        "HAVING COUNT(*) > 1 OR r.notification_id IS NULL OR SUM(r.amount) <> -(SELECT "
        "COALESCE(SUM(c.amount), 0) FROM ledger_entries c WHERE c.notification_id = "
        "r.notification_id AND c.reason IN ('sms', 'whatsapp'))",
    ),
    (
        4,
        "refund_only_failed",
        "SELECT r.notification_id, n.status FROM ledger_entries r JOIN notifications n "
        "ON n.id = r.notification_id WHERE r.reason = 'refund' "
        "AND n.status <> 'failed'",
    ),
    (
        5,
        "no_send_for_drafts",
        "SELECT n.id, e.status FROM notifications n JOIN envelopes e ON e.id = n.envelope_id "
        "WHERE e.status IN ('rascunho', 'excluido')",
    ),
    (
        5,
        "no_send_after_signature",
        "SELECT n.id, s.id FROM notifications n JOIN signers s ON s.id = n.signer_id "
        "WHERE s.signed_at IS NOT NULL AND n.created_at > s.signed_at",
    ),
    (
        5,
        "no_send_after_expiry",
        "SELECT n.id, e.id FROM notifications n JOIN envelopes e ON e.id = n.envelope_id "
        "WHERE e.expires_at IS NOT NULL AND n.created_at >= e.expires_at",
    ),
    (
        6,
        "paid_debit_has_authorised_actor",
        "SELECT l.id, l.reason, l.actor_user_id FROM ledger_entries l "
        "LEFT JOIN users u ON u.id = l.actor_user_id "
        f"WHERE l.reason IN ({_DEBIT_REASONS}) AND (u.id IS NULL OR u.account_id <> l.account_id)",
    ),
    (
        6,
        "debits_are_negative",
        f"SELECT id, reason, amount FROM ledger_entries WHERE reason IN ({_DEBIT_REASONS}, "
        "'plan_expiry') AND amount > 0",
    ),
    (
        6,
        "credits_are_positive",
        "SELECT id, reason, amount FROM ledger_entries WHERE reason IN ('plan_grant', "
        "'purchase', 'refund') AND amount < 0",
    ),
    (
        7,
        "entry_account_matches_envelope",
        "SELECT l.id, l.account_id, e.account_id FROM ledger_entries l JOIN envelopes e "
        "ON e.id = l.envelope_id WHERE l.account_id <> e.account_id",
    ),
    (
        7,
        "send_account_matches_envelope",
        "SELECT n.id, n.account_id, e.account_id FROM notifications n JOIN envelopes e "
        "ON e.id = n.envelope_id WHERE n.account_id <> e.account_id",
    ),
    (
        7,
        "requester_belongs_to_account",
        "SELECT n.id, n.requested_by FROM notifications n JOIN users u ON u.id = n.requested_by "
        "WHERE u.account_id <> n.account_id",
    ),
]


def _pool_checks() -> list[tuple[int, str, str]]:
    checks = []
    for reason, pools in REASON_POOLS.items():
        allowed = ", ".join(f"'{p.value}'" for p in pools)
        checks.append(
            (
                3,
                f"pool_of_{reason.value}",
                f"SELECT id, pool FROM ledger_entries WHERE reason = '{reason.value}' "
                f"AND pool NOT IN ({allowed})",
            )
        )
    return checks


def audit(conn: Connection, limit_per_check: int = 20) -> list[Violation]:
    """Run every check; each row a check returns is one violation."""
    found: list[Violation] = []
    for invariant, name, sql in [*_CHECKS, *_pool_checks()]:
        rows = conn.execute(text(f"{sql} LIMIT {int(limit_per_check)}")).all()
        found.extend(Violation(invariant, name, ", ".join(str(v) for v in row)) for row in rows)
    return found


def checks() -> list[str]:
    return [name for _, name, _ in [*_CHECKS, *_pool_checks()]]
