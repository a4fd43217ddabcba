"""Telegram handlers of the scheduler: `/lembretes` (`/reminders`) and the nudge's mute button.

Every command and tap re-checks who is asking: only linked users in a private chat, only
admins change the account's policy, and "Não lembrar mais" works only on an envelope the user
may see (someone else's is "not found" and nothing changes). The handlers reach the use cases
through the `App` given to `handlers()` or found in `application.bot_data["app"]`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.i18n import current_language, resolve_language, t
from bot.scheduler import render
from core.errors import DomainError, InvalidInput, NotAllowed, NotFound
from core.reminders import (
    OFFSET_CHOICES,
    QUIET_PRESETS,
    RESEND_EVERY_CHOICES,
    Reminders,
    ReminderSettings,
    ReminderUnitOfWorkFactory,
)

if TYPE_CHECKING:
    from bot.bootstrap import App

logger = logging.getLogger(__name__)
# The application has no `Defaults`: every call says HTML and no link preview itself.
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

MUTE_PATTERN = r"^mute:"
SETTINGS_PATTERN = r"^rem:"
_ID = r"[1-9][0-9]{0,17}"
_MUTE = re.compile(rf"mute:(?P<envelope_id>{_ID})")
_SETTING = re.compile(
    r"rem:(?:(?P<switch>on|off)|o:(?P<offset>[0-9]{1,7}):(?P<on>[01])|"
    r"q:(?P<quiet>[0-9])|a:(?P<resend>[0-9]{1,2})|t:(?P<threshold>[0-9]{1,3}))"
)

Context = ContextTypes.DEFAULT_TYPE


def parse_setting(data: str | None) -> Callable[[ReminderSettings], ReminderSettings] | None:
    """The change a `rem:` button asks for, or None when the data is not one we make."""
    match = _SETTING.fullmatch(data or "")
    if match is None:
        return None
    if match["switch"]:
        on = match["switch"] == "on"
        return lambda s: replace(s, enabled=on)
    if match["offset"]:
        offset = timedelta(seconds=int(match["offset"]))
        if offset not in OFFSET_CHOICES:
            return None
        wanted = match["on"] == "1"

        def toggle(s: ReminderSettings) -> ReminderSettings:
            chosen = set(s.offsets) | {offset} if wanted else set(s.offsets) - {offset}
            if not chosen:
                raise InvalidInput("keep at least one offset", field="offsets", reason="last")
            return replace(s, offsets=tuple(sorted(chosen, reverse=True)))

        return toggle
    if match["quiet"]:
        index = int(match["quiet"])
        if index >= len(QUIET_PRESETS):
            return None
        return lambda s: replace(s, quiet=QUIET_PRESETS[index])
    if match["resend"]:
        days = int(match["resend"])
        if days and days not in RESEND_EVERY_CHOICES:
            return None
        return lambda s: replace(s, auto_resend_days=days or None)
    threshold = int(match["threshold"])
    if threshold not in render.THRESHOLD_CHOICES:
        return None
    return lambda s: replace(s, low_balance_threshold=threshold)


def parse_mute(data: str | None) -> int | None:
    match = _MUTE.fullmatch(data or "")
    return int(match["envelope_id"]) if match else None


class ReminderHandlers:
    def __init__(self, app: App | None = None) -> None:
        self._app = app
        self._reminders: Reminders | None = None

    def reminders(self, context: Context) -> Reminders:
        if self._reminders is None:
            app = self._app or cast("App | None", context.bot_data.get("app"))
            if app is None:
                raise RuntimeError("pass the App to handlers() or set bot_data['app']")
            # The bootstrap's units of work carry every feature's repository.
            factory = cast(ReminderUnitOfWorkFactory, app.uow)
            self._reminders = Reminders(app.lacre, factory, app.clock)
        return self._reminders

    async def _actor(self, update: Update, context: Context) -> tuple[int, str] | None:
        """(user id, language) of a linked user in a private chat; otherwise say why, None."""
        tg_user, chat = update.effective_user, update.effective_chat
        language = resolve_language(tg_user.language_code if tg_user else None)
        current_language.set(language)
        if tg_user is None or chat is None:
            return None
        if chat.type != ChatType.PRIVATE:
            await self._tell(update, t("sched.error.private", language))
            return None
        reminders = self.reminders(context)
        user = await asyncio.to_thread(reminders.lacre.actor, tg_user.id)
        if user is None:
            await self._tell(update, t("sched.error.not_linked", language))
            return None
        chosen = await asyncio.to_thread(reminders.language, tg_user.id)
        view_language = resolve_language(chosen or tg_user.language_code)
        current_language.set(view_language)
        return user.id, view_language

    @staticmethod
    async def _tell(update: Update, text: str) -> None:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(
                text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
            )

    async def command(self, update: Update, context: Context) -> None:
        """Show the account's reminder policy, with buttons for admins (/lembretes)."""
        actor = await self._actor(update, context)
        if actor is None or update.effective_message is None:
            return
        user_id, language = actor
        view = await asyncio.to_thread(self.reminders(context).view, user_id)
        page = render.settings_page(view, language)
        await update.effective_message.reply_text(
            page.html,
            parse_mode=ParseMode.HTML,
            reply_markup=page.markup,
            link_preview_options=NO_PREVIEW,
        )

    async def setting(self, update: Update, context: Context) -> None:
        """Change one setting from a /lembretes button and redraw the page in place."""
        query = update.callback_query
        if query is None:
            return
        actor = await self._actor(update, context)
        if actor is None:
            return
        user_id, language = actor
        change = parse_setting(query.data)
        if change is None:
            await query.answer(t("sched.error.bad_button", language), show_alert=True)
            return
        try:
            view = await asyncio.to_thread(self.reminders(context).update, user_id, change)
        except NotAllowed:
            await query.answer(t("sched.error.admin_only", language), show_alert=True)
            return
        except InvalidInput as exc:
            key = (
                "sched.error.last_offset"
                if exc.data.get("reason") == "last"
                else "sched.error.bad_button"
            )
            await query.answer(t(key, language), show_alert=True)
            return
        page = render.settings_page(view, language)
        await query.answer(t("sched.settings.saved", language))
        await _edit(query, page.html, page.markup)

    async def mute(self, update: Update, context: Context) -> None:
        """ "Não lembrar mais" on a nudge: this envelope gets no more reminders."""
        query = update.callback_query
        if query is None:
            return
        actor = await self._actor(update, context)
        if actor is None:
            return
        user_id, language = actor
        envelope_id = parse_mute(query.data)
        if envelope_id is None:
            await query.answer(t("sched.error.bad_button", language), show_alert=True)
            return
        try:
            done = await asyncio.to_thread(self.reminders(context).mute, user_id, envelope_id)
        except (NotFound, NotAllowed):
            await query.answer(t("sched.error.not_found", language), show_alert=True)
            return
        except DomainError:
            await query.answer(t("sched.error.bad_button", language), show_alert=True)
            return
        await query.answer(t("sched.mute.done" if done else "sched.mute.already", language))
        message = query.message
        if done and isinstance(message, Message):
            footer = t("sched.mute.footer", language)
            await _edit(
                query, f"{message.text_html}\n\n{footer}", render.without_mute(message.reply_markup)
            )


async def _edit(query: Any, html: str, markup: Any) -> None:
    try:
        await query.edit_message_text(
            html, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


def handlers(app: App | None = None) -> list[BaseHandler[Update, Any, Any]]:
    """The scheduler's handlers, for the lead to register with the application's others."""
    h = ReminderHandlers(app)
    return [
        CommandHandler(["lembretes", "reminders"], h.command),
        CallbackQueryHandler(h.setting, pattern=SETTINGS_PATTERN),
        CallbackQueryHandler(h.mute, pattern=MUTE_PATTERN),
    ]
