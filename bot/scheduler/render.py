"""The scheduler's messages: nudge, expiry, renewal, low balance and the /lembretes page.

HTML parse mode; every user value goes through `bot.i18n.t`, which escapes it. Buttons carry
the bot's callback data (`rsa:`, `rsc:`, `env:`, `pl`) and the scheduler's own `mute:` and
`rem:`; each is checked against Telegram's 64-byte limit when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from babel.dates import format_timedelta
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Raw, babel_locale, resolve_language, t, time_left, when
from core.envelopes import Envelope, Signer
from core.notifications import Channel
from core.reminders import (
    OFFSET_CHOICES,
    QUIET_PRESETS,
    RESEND_EVERY_CHOICES,
    AlertKind,
    BalanceNotice,
    ExpiryNotice,
    NudgeNotice,
    QuietHours,
    ReminderView,
    RenewalNotice,
)

MAX_CALLBACK_BYTES = 64
MAX_LISTED_SIGNERS = 12
MAX_SIGNER_BUTTONS = 6
THRESHOLD_CHOICES = (1, 2, 3, 5, 10)
_NAME = 40  # characters of a name on a button or in a list


@dataclass(frozen=True)
class Rendered:
    html: str
    markup: InlineKeyboardMarkup | None = None


def callback(data: str) -> str:
    """Callback data as Telegram takes it: ASCII, 1 to 64 bytes."""
    if not data.isascii() or not 0 < len(data.encode("ascii")) <= MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data must be 1..64 ASCII bytes: {data!r}")
    return data


def resend_all_data(envelope_id: int) -> str:
    return callback(f"rsa:{envelope_id}")


def resend_one_data(envelope_id: int, signer_id: int, channel: Channel) -> str:
    return callback(f"rsc:{envelope_id}:{signer_id}:{channel.value}")


def open_data(envelope_id: int) -> str:
    return callback(f"env:{envelope_id}")


def mute_data(envelope_id: int) -> str:
    return callback(f"mute:{envelope_id}")


PLANS_DATA = "pl"


def label(key: str, language: str, /, **values: object) -> str:
    """A button label: plain text, so values are not HTML-escaped."""
    return t(key, language, **{name: Raw(str(value)) for name, value in values.items()})


def _short(text: str, size: int = _NAME) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


def _credits_label(amount: int, language: str) -> str:
    key = "sched.cost.one" if amount == 1 else "sched.cost.many"
    return label(key, language, count=amount)


def offset_label(offset: timedelta, language: str) -> str:
    """ "3 dias", "1 dia", "2 horas": whole units, unlike the rounded time left."""
    return format_timedelta(offset, threshold=1, locale=babel_locale(language))


# -- nudges --------------------------------------------------------------------------------------
def nudge(notice: NudgeNotice, language: str | None, now: datetime) -> Rendered:
    """The deadline nudge: envelope, time left, who has not signed, one-tap resend buttons."""
    lang = resolve_language(language)
    env, account = notice.envelope, notice.account
    assert env.id is not None and env.expires_at is not None
    left = max(env.expires_at - now, timedelta(minutes=1))
    pending = env.pending_signers()
    in_turn = {id(s) for s in env.signers_in_turn()}
    lines = [
        t("sched.nudge.head", lang),
        t("sched.nudge.envelope", lang, title=env.title, ref=env.ref),
        t(
            "sched.nudge.deadline",
            lang,
            when=when(env.expires_at, account.timezone, lang),
            left=time_left(left.total_seconds(), lang),
        ),
        "",
        t("sched.nudge.pending", lang, count=len(pending)),
    ]
    for signer in pending[:MAX_LISTED_SIGNERS]:
        key = "sched.nudge.signer" if id(signer) in in_turn else "sched.nudge.signer_waiting"
        lines.append(t(key, lang, name=_short(signer.name, 80), email=signer.email))
    if len(pending) > MAX_LISTED_SIGNERS:
        lines.append(t("sched.nudge.more", lang, count=len(pending) - MAX_LISTED_SIGNERS))
    lines += ["", t("sched.nudge.hint", lang)]
    return Rendered("\n".join(lines), nudge_keyboard(env, notice.sms_cost, lang))


def nudge_keyboard(env: Envelope, sms_cost: int, language: str) -> InlineKeyboardMarkup:
    assert env.id is not None
    rows = [
        [
            InlineKeyboardButton(
                label("sched.kb.email_all", language), callback_data=resend_all_data(env.id)
            )
        ]
    ]
    phones: list[Signer] = [s for s in env.signers_in_turn() if s.phone and s.id is not None]
    for signer in phones[:MAX_SIGNER_BUTTONS]:
        assert signer.id is not None
        name = _short(signer.name.split()[0] if signer.name.split() else signer.name, 20)
        rows.append(
            [
                InlineKeyboardButton(
                    label(
                        "sched.kb.sms", language, name=name, cost=_credits_label(sms_cost, language)
                    ),
                    callback_data=resend_one_data(env.id, signer.id, Channel.SMS),
                ),
                InlineKeyboardButton(
                    label(
                        "sched.kb.whatsapp", language, name=name, cost=_credits_label(1, language)
                    ),
                    callback_data=resend_one_data(env.id, signer.id, Channel.WHATSAPP),
                ),
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(label("sched.kb.open", language), callback_data=open_data(env.id)),
            InlineKeyboardButton(label("sched.kb.mute", language), callback_data=mute_data(env.id)),
        ]
    )
    return InlineKeyboardMarkup(rows)


def without_mute(markup: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    """The same keyboard after "Não lembrar mais": the mute button goes away."""
    if markup is None:
        return None
    rows = [
        [
            b
            for b in row
            if not (isinstance(b.callback_data, str) and b.callback_data.startswith("mute:"))
        ]
        for row in markup.inline_keyboard
    ]
    kept = [row for row in rows if row]
    return InlineKeyboardMarkup(kept) if kept else None


# -- notices -------------------------------------------------------------------------------------
def expiry(notice: ExpiryNotice, language: str | None) -> Rendered:
    lang = resolve_language(language)
    env = notice.envelope
    assert env.id is not None and env.expires_at is not None
    pending = env.pending_signers()
    lines = [
        t("sched.expired.head", lang),
        t(
            "sched.expired.body",
            lang,
            title=env.title,
            ref=env.ref,
            when=when(env.expires_at, notice.account.timezone, lang),
        ),
        t("sched.nudge.pending", lang, count=len(pending)),
    ]
    lines += [
        t("sched.nudge.signer", lang, name=_short(s.name, 80), email=s.email)
        for s in pending[:MAX_LISTED_SIGNERS]
    ]
    if len(pending) > MAX_LISTED_SIGNERS:
        lines.append(t("sched.nudge.more", lang, count=len(pending) - MAX_LISTED_SIGNERS))
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(label("sched.kb.open", lang), callback_data=open_data(env.id))]]
    )
    return Rendered("\n".join(lines), markup)


def renewal(notice: RenewalNotice, language: str | None) -> Rendered:
    lang = resolve_language(language)
    step = notice.step
    lines = [t("sched.renewal.head", lang, plan=notice.plan.name)]
    if step.lapse:
        lines.append(t("sched.renewal.lapsed", lang, count=step.lapse))
    if step.grant:
        lines.append(t("sched.renewal.granted", lang, count=step.grant))
    if step.grant_notification:
        lines.append(t("sched.renewal.granted_notification", lang, count=step.grant_notification))
    lines += [
        t(
            "sched.balances",
            lang,
            credits=notice.balances.credits,
            notification=notice.balances.notification_credits,
        ),
        t(
            "sched.renewal.next",
            lang,
            when=when(step.next_renewal, notice.account.timezone, lang),
        ),
    ]
    return Rendered("\n".join(lines), _plans_keyboard(lang))


def balance(notice: BalanceNotice, language: str | None) -> Rendered:
    lang = resolve_language(language)
    check = notice.check
    if notice.kind is AlertKind.NOTIFICATION:
        body = t(
            "sched.alert.notification",
            lang,
            count=check.balances.notification_credits,
            threshold=check.threshold,
        )
    else:
        body = t(
            "sched.alert.credits",
            lang,
            credits=check.balances.credits,
            drafts=check.drafts,
            needed=check.drafts_credits,
        )
    return Rendered(body, _plans_keyboard(lang))


def _plans_keyboard(language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label("sched.kb.plans", language), callback_data=PLANS_DATA)]]
    )


# -- /lembretes ----------------------------------------------------------------------------------
def quiet_label(quiet: QuietHours | None, language: str) -> str:
    return quiet.label() if quiet is not None else t("sched.settings.quiet_none", language)


def resend_label(days: int | None, language: str) -> str:
    if days is None:
        return t("sched.settings.resend_off", language)
    if days == 1:
        return t("sched.settings.resend_daily", language)
    return t("sched.settings.resend_every", language, days=days)


def settings_page(view: ReminderView, language: str | None) -> Rendered:
    lang = resolve_language(language)
    s = view.settings
    offsets = ", ".join(offset_label(o, lang) for o in s.offsets)
    lines = [
        t("sched.settings.title", lang),
        t("sched.settings.on" if s.nudging else "sched.settings.off", lang),
        t("sched.settings.offsets", lang, offsets=offsets or "—"),
        t(
            "sched.settings.quiet",
            lang,
            quiet=quiet_label(s.quiet, lang),
            zone=view.account.timezone,
        ),
        t("sched.settings.resend", lang, resend=resend_label(s.auto_resend_days, lang)),
        t("sched.settings.threshold", lang, count=s.low_balance_threshold),
        "",
        t("sched.settings.expiry_note", lang),
    ]
    if not view.can_edit:
        lines += ["", t("sched.error.admin_only", lang)]
        return Rendered("\n".join(lines))
    return Rendered("\n".join(lines), settings_keyboard(view, lang))


def _next(choices: tuple[object, ...], current: object) -> int:
    return (choices.index(current) + 1) % len(choices) if current in choices else 0


def settings_keyboard(view: ReminderView, language: str) -> InlineKeyboardMarkup:
    s = view.settings
    toggle = (
        InlineKeyboardButton(
            label("sched.kb.turn_off", language), callback_data=callback("rem:off")
        )
        if s.enabled
        else InlineKeyboardButton(
            label("sched.kb.turn_on", language), callback_data=callback("rem:on")
        )
    )
    rows: list[list[InlineKeyboardButton]] = [[toggle]]
    row: list[InlineKeyboardButton] = []
    for offset in OFFSET_CHOICES:
        chosen = offset in s.offsets
        seconds = int(offset.total_seconds())
        row.append(
            InlineKeyboardButton(
                label(
                    "sched.kb.offset_on" if chosen else "sched.kb.offset_off",
                    language,
                    offset=offset_label(offset, language),
                ),
                callback_data=callback(f"rem:o:{seconds}:{0 if chosen else 1}"),
            )
        )
        if len(row) == 4:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    quiet_next = _next(QUIET_PRESETS, s.quiet)
    resend_choices: tuple[int | None, ...] = (None, *RESEND_EVERY_CHOICES)
    resend_next = resend_choices[_next(resend_choices, s.auto_resend_days)]
    threshold_next = THRESHOLD_CHOICES[_next(THRESHOLD_CHOICES, s.low_balance_threshold)]
    rows += [
        [
            InlineKeyboardButton(
                label("sched.kb.quiet", language, quiet=quiet_label(s.quiet, language)),
                callback_data=callback(f"rem:q:{quiet_next}"),
            )
        ],
        [
            InlineKeyboardButton(
                label(
                    "sched.kb.resend", language, resend=resend_label(s.auto_resend_days, language)
                ),
                callback_data=callback(f"rem:a:{resend_next or 0}"),
            )
        ],
        [
            InlineKeyboardButton(
                label("sched.kb.threshold", language, count=s.low_balance_threshold),
                callback_data=callback(f"rem:t:{threshold_next}"),
            )
        ],
    ]
    return InlineKeyboardMarkup(rows)
