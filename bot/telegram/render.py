"""Telegram HTML texts of the bot: lists, cards, quotes, balances, plans, history, refusals.

Every user value goes through `bot.i18n.t`, which escapes it; fragments already rendered are
passed on as `Raw`. Texts that could grow (lists, cards) stay under Telegram's 4096 characters.
"""

from __future__ import annotations

import html
from datetime import datetime
from functools import lru_cache

from babel.numbers import format_currency

from bot import i18n
from bot.i18n import Raw, babel_locale, current_language, t, template
from bot.phones import national
from core.browse import (
    BalanceView,
    EnvelopeCard,
    EnvelopePage,
    EnvelopeSummary,
    HistoryPage,
    PlansView,
    ResendChoice,
    Tab,
)
from core.confirmations import SealProposal, SendProposal, TransitionProposal
from core.envelopes import Envelope
from core.errors import DomainError
from core.ledger import Pool
from core.notifications import Channel
from core.plans import Plan
from core.services import SealResult, SendResult

MAX_MESSAGE = 4096


# Babel parses the locale on every call; a list page formats dozens of numbers and dates, and
# the same ones (counts, pages, deadlines) come back on every view.
@lru_cache(maxsize=8192)
def _number(value: int, language: str) -> str:
    return i18n.number(value, language)


@lru_cache(maxsize=8192)
def _when(moment: datetime, timezone: str, language: str) -> str:
    return i18n.when(moment, timezone, language)


def clear_caches() -> None:
    """Forget every number, date and duration formatted so far, as a new process starts (the
    benchmark starts each run so; the bot never needs to)."""
    i18n.clear_caches()
    _number.cache_clear()
    _when.cache_clear()


def number(value: int) -> str:
    """An integer in the current update's locale ("1.234" in pt-BR)."""
    return _number(value, current_language.get())


def when(moment: datetime, timezone: str) -> str:
    """A date and time in the account's zone and the current update's locale."""
    return _when(moment, timezone, current_language.get())


# Room kept free under the limit for what a handler may add around a rendered text.
_CARD_BUDGET = MAX_MESSAGE - 200


def amount(n: int, pool: Pool | str) -> str:
    """ "1 crédito", "3 créditos de notificação": number in the user's locale."""
    name = "credits" if Pool(pool) is Pool.CREDITS else "notification"
    return t(f"amount.{name}.{'one' if abs(n) == 1 else 'other'}", n=Raw(number(n)))


def money(cents: int) -> str:
    return str(format_currency(cents / 100, "BRL", locale=babel_locale()))


def status_word(env: Envelope | EnvelopeSummary, now: datetime) -> str:
    return t(f"status.{env.display_status(now)}")


def deadline(env: Envelope | EnvelopeSummary, timezone: str, now: datetime) -> str:
    return _deadline(env, timezone, now, current_language.get())


def _deadline(env: Envelope | EnvelopeSummary, timezone: str, now: datetime, lang: str) -> str:
    expires = env.expires_at
    if expires is None:
        return t("deadline.none", lang)
    moment = _when(expires, timezone, lang)
    if expires <= now:
        return t("deadline.past", lang, when=Raw(moment))
    # A rough duration ("2 semanas"): minutes are precise enough.
    left = i18n.time_left((expires - now).total_seconds() // 60 * 60, lang)
    # Both values are rendered text already: what `t` does with `Raw` ones.
    return template("deadline.left", lang).format_map({"when": moment, "left": left})


# -- lists ----------------------------------------------------------------------------------
def envelope_list(view: EnvelopePage) -> str:
    if view.tab is Tab.BUSCA:
        head = t("list.search_title", term=view.search, total=Raw(number(view.total)))
        empty = t("list.search_empty", term=view.search)
    else:
        head = t("list.title", tab=t(f"tab.{view.tab.value}"), total=Raw(number(view.total)))
        empty = t("list.empty")
    lines = [head]
    if not view.items:
        lines += ["", empty]
    # Eight lines a page on most updates: filled in as `t` would (user values escaped, rendered
    # fragments as they are) without its per-value checks, the language looked up once.
    lang = current_language.get()
    item = template("list.item", lang)
    now, zone = view.now, view.timezone
    for i, env in enumerate(view.items, start=view.page * 8 + 1):
        lines.append("")
        lines.append(
            item.format_map(
                {
                    "n": _number(i, lang),
                    "title": html.escape(env.title, quote=False),
                    "ref": html.escape(env.ref, quote=False),
                    "status": status_word(env, now),
                    "deadline": _deadline(env, zone, now, lang),
                }
            )
        )
    if view.pages > 1:
        lines += [
            "",
            t("list.page", page=Raw(number(view.page + 1)), pages=Raw(number(view.pages))),
        ]
    return "\n".join(lines)


# -- the card -------------------------------------------------------------------------------
def envelope_card(card: EnvelopeCard) -> str:
    """ "Informações do Envelope"; long lists of documents or signers are cut to stay under
    4096 characters, so the card is still edited in place."""
    env, now = card.envelope, card.now
    head = [
        t("card.title"),
        t(
            "card.header",
            title=env.title,
            ref=env.ref,
            status=Raw(status_word(env, now)),
        ),
        t("card.expires", deadline=Raw(deadline(env, card.timezone, now))),
    ]
    if env.description:
        head.append(t("card.description", description=_cut(env.description, 300)))
    if env.icp:
        head.append(t("card.icp"))
    head += ["", t("card.credits", credits=Raw(amount(card.seal_credits, Pool.CREDITS)))]
    docs = [t("card.documents")] + [
        t("card.document", name=d.name, pages=Raw(number(d.pages))) for d in env.documents
    ]
    signer_lines = [t("card.signers")]
    for s in sorted(env.signers, key=lambda s: (s.order, s.id or 0)):
        notice = card.notices.get(s.id or 0)
        extra = ""
        if notice is not None:
            state = "refunded" if notice.refunded else notice.status.value
            extra = t(
                "card.notice",
                channel=t(f"channel.{notice.channel.value}"),
                status=t(f"delivery.{state}"),
            )
        signer_lines.append(
            t(
                "card.signer_ordered" if env.ordered else "card.signer",
                order=Raw(number(s.order + 1)),
                name=s.name,
                status=t(f"signer.{s.status.value}"),
                notice=Raw(extra),
            )
        )
    return "\n".join(
        [*head, "", *_fit(len("\n".join(head)) + 2, [docs, signer_lines], _CARD_BUDGET)]
    )


def _fit(used: int, sections: list[list[str]], budget: int) -> list[str]:
    """Sections (a heading, then one line each) in `budget - used` characters: while they do
    not fit, the longest one loses its last line, and says "… e mais N" for what it hides.
    Hundreds of signers, or of long document names, still make a card Telegram edits."""
    shown = [len(lines) - 1 for lines in sections]

    def cut(i: int) -> list[str]:
        lines = sections[i]
        hidden = len(lines) - 1 - shown[i]
        if not hidden:
            return lines
        return [*lines[: 1 + shown[i]], t("card.more", count=Raw(number(hidden)))]

    def size(lines: list[str]) -> int:
        return sum(len(line) + 1 for line in lines)

    while used + sum(size(cut(i)) for i in range(len(sections))) > budget:
        longest = max(
            (i for i in range(len(sections)) if shown[i]),
            key=lambda i: size(cut(i)),
            default=None,
        )
        if longest is None:
            break
        shown[longest] -= 1
    return [line for i in range(len(sections)) for line in ([""] if i else []) + cut(i)]


# -- confirmations and receipts --------------------------------------------------------------
def _about(env: Envelope | EnvelopeSummary) -> str:
    return t("envelope.about", title=env.title, ref=env.ref)


def seal_confirm(p: SealProposal) -> str:
    return t(
        "seal.confirm",
        about=Raw(_about(p.envelope)),
        cost=Raw(amount(p.quote.total, Pool.CREDITS)),
        before=Raw(number(p.quote.balance_before)),
        after=Raw(number(p.quote.balance_after)),
    )


def seal_done(env: Envelope | EnvelopeSummary, result: SealResult) -> str:
    if result.already_sealed:
        return t("seal.already", about=Raw(_about(env)))
    return t(
        "seal.done",
        about=Raw(_about(env)),
        cost=Raw(amount(result.charged, Pool.CREDITS)),
        balance=Raw(number(result.balance_after)),
        count=Raw(number(len(result.notified))),
    )


def transition_confirm(p: TransitionProposal) -> str:
    return t(f"{p.confirmation.action.value}.confirm", about=Raw(_about(p.envelope)))


def transition_done(action: str, env: Envelope | EnvelopeSummary) -> str:
    return t(f"{action}.done", about=Raw(_about(env)))


def resend_menu(env: Envelope, now: datetime) -> str:
    lines = [t("resend.menu", about=Raw(_about(env)))]
    in_turn = {s.id for s in env.signers_in_turn()}
    waiting = [s.name for s in env.pending_signers() if s.id not in in_turn]
    if waiting:
        lines.append(t("resend.waiting", names=", ".join(waiting)))
    return "\n".join(lines)


def channel_name(channel: Channel) -> str:
    return t(f"channel.{channel.value}")


def why(reason: str, data: dict[str, object]) -> str:
    return t(
        f"why.{reason}",
        seconds=Raw(number(int(str(data.get("seconds", 0))))),
        status=t(f"status.{data.get('status', 'pendente')}"),
        region=str(data.get("region", "")),
    )


def sentence(text: str) -> str:
    """A reason shown on its own: its first letter up, the rest as written (`str.capitalize`
    would lower a status or a region code: "(Concluído)", "(BR)")."""
    return text[:1].upper() + text[1:]


def channel_menu(choice: ResendChoice) -> str:
    lines = [
        t(
            "resend.channels",
            name=choice.signer_name,
            about=Raw(_about(choice.envelope)),
            balance=Raw(amount(choice.notification_balance, Pool.NOTIFICATION)),
        )
    ]
    for option in choice.options:
        if option.problem is not None:
            lines.append(
                t(
                    "resend.unavailable",
                    channel=channel_name(option.channel),
                    reason=Raw(why(option.problem, option.problem_data)),
                )
            )
    return "\n".join(lines)


def send_confirm(p: SendProposal) -> str:
    q = p.quote
    destination = q.destination.removeprefix("whatsapp:")
    text = t(
        "send.confirm",
        channel=channel_name(q.quote.channel),
        name=p.signer_name,
        destination=national(destination) if destination.startswith("+55") else destination,
        about=Raw(_about(p.envelope)),
        cost=Raw(amount(q.quote.cost, Pool.NOTIFICATION)),
        before=Raw(number(q.balance_before)),
        after=Raw(number(q.balance_after)),
    )
    if q.quote.segments > 1:
        text += "\n" + t("send.sms_segments", segments=Raw(number(q.quote.segments)))
    return text


def send_done(result: SendResult, signer_name: str) -> str:
    n = result.notification
    if result.duplicate:
        return t("send.duplicate")
    if n.cost == 0:
        return t("send.email_queued", name=signer_name)
    return t(
        "send.queued",
        channel=channel_name(n.channel),
        name=signer_name,
        cost=Raw(amount(n.cost, Pool.NOTIFICATION)),
        balance=Raw(number(result.balance_after)),
    )


# -- balances, plans, history ----------------------------------------------------------------
def _renewal(moment: datetime | None, timezone: str) -> str:
    return when(moment, timezone) if moment is not None else t("renewal.none")


def balance(view: BalanceView) -> str:
    renews = Raw(_renewal(view.account.plan_renews_at, view.account.timezone))
    text = t(
        "balance.text",
        account=view.account.name,
        credits=Raw(number(view.balances.credits)),
        notification=Raw(number(view.balances.notification_credits)),
        plan=view.plan.name,
        renews=renews,
    )
    if not view.plan.cumulative:
        text += "\n\n" + t("balance.noncumulative", renews=renews)
    return text


def _monthly(plan: Plan) -> str:
    if plan.monthly_credits is None:
        return t("plans.custom")
    text = t("plans.monthly", credits=Raw(amount(plan.monthly_credits, Pool.CREDITS)))
    return text + (t("plans.noncumulative") if not plan.cumulative else "")


def plans(view: PlansView) -> str:
    lines = [
        t(
            "plans.text",
            plan=view.plan.name,
            monthly=Raw(_monthly(view.plan)),
            credits=Raw(amount(view.balances.credits, Pool.CREDITS)),
            notification=Raw(amount(view.balances.notification_credits, Pool.NOTIFICATION)),
        ),
        "",
        t("plans.others"),
    ]
    lines += [t("plans.other", plan=p.name, monthly=Raw(_monthly(p))) for p in view.others]
    lines += ["", t("plans.packs")]
    lines += [
        t(
            "plans.pack",
            credits=Raw(amount(pack.notification_credits, Pool.NOTIFICATION)),
            price=money(pack.price_cents),
        )
        for pack in view.packs
    ]
    lines += ["", t("plans.after")]
    return "\n".join(lines)


def history(view: HistoryPage) -> str:
    lines = [
        t(
            "history.title",
            total=Raw(number(view.total)),
            page=Raw(number(view.page + 1)),
            pages=Raw(number(view.pages)),
        )
    ]
    if not view.lines:
        lines += ["", t("history.empty")]
    for line in view.lines:
        e = line.entry
        signed = ("+" if e.amount > 0 else "−") + number(abs(e.amount))
        lines.append("")
        lines.append(
            t(
                "history.line",
                when=Raw(when(e.created_at, view.timezone)),
                amount=signed,
                pool=t("pool.credits" if e.pool is Pool.CREDITS else "pool.notification"),
                reason=t(f"ledger.{e.reason.value}"),
            )
        )
        if line.envelope_title:
            lines.append(t("history.envelope", envelope=line.envelope_title))
    return "\n".join(lines)


# -- refusals -------------------------------------------------------------------------------
def refusal(exc: DomainError) -> str:
    """What the user is told when a use case refuses; nothing was changed."""
    data = exc.data
    code = exc.code
    if code == "not_found":
        return t("notfound.confirmation" if data.get("what") == "confirmation" else "notfound")
    if code == "insufficient_credits":
        pool = Pool(str(data.get("pool", Pool.CREDITS.value)))
        return t(
            "missing.credits" if pool is Pool.CREDITS else "missing.notification",
            cost=Raw(amount(int(data.get("needed", 0)), pool)),
            balance=Raw(amount(int(data.get("balance", 0)), pool)),
            missing=Raw(amount(int(data.get("missing", 0)), pool)),
        )
    if code == "quote_changed":
        return t(
            "quote.changed",
            before=Raw(number(int(data.get("before", 0)))),
            now=Raw(number(int(data.get("now", 0)))),
        )
    if code in ("channel_unavailable", "cooldown"):
        return sentence(why(str(data.get("reason", "nobody")), data))
    if code == "cap_reached":
        return t("send.cap", cap=Raw(number(int(data.get("cap", 0)))))
    if code == "conflict":
        return t("conflict")
    if code == "not_allowed":
        return t("access.unlinked")
    if code == "invalid_state":
        reason = data.get("reason")
        if reason in ("used", "expired"):
            return t(f"confirm.{reason}")
        if reason == "signed":
            return t("state.signed")
        missing = data.get("missing")
        if missing in ("signer", "document", "expires_at"):
            return t(f"seal.needs.{missing}")
        status = str(data.get("status", ""))
        if status == "expirado":
            return t("state.expired")
        return t("state.generic", status=t(f"status.{status}") if status else "")
    if code == "invalid_input":
        return t("input.invalid")
    return t("refused")


# -- splitting ------------------------------------------------------------------------------
def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut at line breaks into parts under `limit`; tags never span lines in our texts."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one overlong line: cut it hard (plain text only)
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
