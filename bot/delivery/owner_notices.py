"""Telling the owner in Telegram that a send failed: who, which channel, why, credit returned."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import Forbidden, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.i18n import t
from bot.phones import national
from core.delivery import REASON_SMTP_REJECTED, is_permanent
from core.notifications import Channel, Notification

log = logging.getLogger(__name__)

# Longest a RetryAfter is waited out; beyond this the notice is dropped (it is logged).
MAX_RETRY_AFTER = timedelta(seconds=60)


class Messenger(Protocol):
    async def send(self, telegram_user_id: int, html: str) -> bool:
        """Send one HTML message; False when it could not be delivered."""
        ...


class TelegramMessenger:
    """The Messenger over python-telegram-bot; a user who blocked the bot is reported once."""

    def __init__(
        self, bot: Bot, on_blocked: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        self.bot = bot
        self.on_blocked = on_blocked

    async def send(self, telegram_user_id: int, html: str) -> bool:
        for first in (True, False):
            try:
                await self.bot.send_message(
                    chat_id=telegram_user_id,
                    text=html,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return True
            except Forbidden:
                log.info("owner %s blocked the bot: notice dropped", telegram_user_id)
                if self.on_blocked is not None:
                    await self.on_blocked(telegram_user_id)
                return False
            except RetryAfter as exc:
                wait = _retry_after(exc)
                if not first or wait > MAX_RETRY_AFTER:
                    log.warning("owner notice to %s dropped: flood limit", telegram_user_id)
                    return False
                await asyncio.sleep(wait.total_seconds())
            except TelegramError as exc:
                log.warning("owner notice to %s failed: %s", telegram_user_id, exc)
                return False
        return False


def _retry_after(exc: RetryAfter) -> timedelta:
    with warnings.catch_warnings():
        # The attribute's type moves from int to timedelta in PTB; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


@dataclass(frozen=True)
class FailureFacts:
    """What the owner reads about one failed send."""

    notification: Notification
    envelope_title: str
    signer_name: str
    reason: str
    refunded: int  # notification credits given back (0: none)


def _destination(n: Notification) -> str:
    if n.channel is Channel.EMAIL:
        return n.destination
    phone = n.destination.removeprefix("whatsapp:")
    try:
        return national(phone)
    except Exception:  # a number the phone library cannot read is shown as stored
        return phone


def failure_text(facts: FailureFacts, language: str) -> str:
    """The Telegram HTML message (values escaped by `t`)."""
    n = facts.notification
    channel = t(f"delivery.channel.{n.channel}", language)
    where = _destination(n)
    reason = t(f"delivery.reason.{facts.reason}", language)
    lines = [
        t("delivery.failed.title", language),
        "",
        t("delivery.failed.envelope", language, title=facts.envelope_title),
        t("delivery.failed.signer", language, signer=facts.signer_name, destination=where),
        t("delivery.failed.channel", language, channel=channel),
        t("delivery.failed.reason", language, reason=reason),
    ]
    if n.error_code:
        lines.append(t("delivery.failed.code", language, code=n.error_code))
    lines.append("")
    if n.channel is Channel.EMAIL:
        lines.append(t("delivery.refund.free", language))
    elif facts.refunded == 1:
        lines.append(t("delivery.refund.one", language))
    elif facts.refunded > 1:
        lines.append(t("delivery.refund.many", language, credits=facts.refunded))
    elif n.cost > 0:
        lines.append(t("delivery.refund.billed", language))
    if n.channel is Channel.EMAIL or facts.reason == REASON_SMTP_REJECTED:
        lines.append(t("delivery.hint.email", language))
    elif is_permanent(n.error_code):
        lines.append(t("delivery.hint.permanent", language))
    else:
        lines.append(t("delivery.hint.temporary", language))
    return "\n".join(lines)
