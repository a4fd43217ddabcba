"""The bot's handlers: each parses an update, calls a use case, renders; nothing kept in memory.

Every handler goes through `gate`: private chats only, the Telegram user is looked up again
(linked or not, language, blocked mark) and `bot.i18n.current_language` is set for the update.
Buttons re-check the user, the account, visibility and the current state on every tap.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from telegram import (
    Bot,
    CallbackQuery,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.i18n import current_language, resolve_language, t
from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from bot.telegram import render
from bot.telegram.render import number
from bot.telegram.updates import origin
from core.browse import Browse, CardAction, EnvelopeSummary, Linked, Tab, Viewer
from core.confirmations import Action, Confirmations, Confirmed
from core.envelopes import Envelope, EnvelopeStatus
from core.errors import (
    DomainError,
    InsufficientCredits,
    InvalidState,
    LinkTokenInvalid,
)
from core.notifications import Channel
from core.services import Lacre, SendResult

log = logging.getLogger("bot.telegram")

Context = ContextTypes.DEFAULT_TYPE
SERVICES_KEY = "lacre.services"
_TAGS = re.compile(r"<[^>]+>")
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class BotServices:
    """The use cases the handlers call; put into `bot_data` once by `build_application`."""

    lacre: Lacre
    browse: Browse
    confirmations: Confirmations
    payment_url_template: str
    # Blocking use cases run in worker threads (PostgreSQL: network round trips); on a local
    # SQLite file they are sub-millisecond and run inline, which is faster than a thread hop.
    threaded: bool = True

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call a (blocking, database) use case."""
        if self.threaded:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)


@dataclass(frozen=True)
class Toast:
    """The answer to a button tap: a short notice, or an alert the user must dismiss."""

    text: str
    alert: bool = False


def services(context: Context) -> BotServices:
    found: BotServices = context.bot_data[SERVICES_KEY]
    return found


def plain(html_text: str, limit: int = 200) -> str:
    """Callback answers are plain text of at most 200 characters."""
    text = html.unescape(_TAGS.sub("", html_text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- showing things ---------------------------------------------------------------------------
async def show(
    update: Update, context: Context, text: str, markup: kb.Markup | None = None
) -> None:
    """Edit the tapped message in place (cards are not re-sent), or send for a command."""
    where = origin(update)
    if where is not None and where.message_id is not None and len(text) <= render.MAX_MESSAGE:
        try:
            await call(
                context.bot,
                "editMessageText",
                chat_id=where.chat_id,
                message_id=where.message_id,
                text=text,
                reply_markup=markup,
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        return
    await send(update, context, text, markup)


async def send(
    update: Update,
    context: Context,
    text: str,
    markup: kb.Markup | None = None,
) -> None:
    """A new message, split under 4096 characters; the buttons go with the last part."""
    where = origin(update)
    assert where is not None
    parts = render.split_html(text)
    for i, part in enumerate(parts):
        await call(
            context.bot,
            "sendMessage",
            chat_id=where.chat_id,
            text=part,
            reply_markup=markup if i == len(parts) - 1 else None,
        )


# Every message is HTML without link previews. The application has no `Defaults` (checking
# every value of every call against them was about 2% of a tap, decision 0012): `call` adds
# these, and the few other senders (scheduler, outbox notices, the pacer) pass them themselves.
PARSE_MODE = ParseMode.HTML
LINK_PREVIEW = LinkPreviewOptions(is_disabled=True)
_LINK_PREVIEW_WIRE = LINK_PREVIEW.to_dict()


async def call(bot: Bot, method: str, **params: Any) -> None:
    """Send or edit a message without turning Telegram's answer into a `Message`.

    Nothing reads that answer, and python-telegram-bot would build an object for every
    button of the keyboard it echoes back (about a third of a list view's cost). Same request,
    same errors (BadRequest, Forbidden, RetryAfter) and the same rate limiter as
    `bot.send_message` / `bot.edit_message_text`.
    """
    params.setdefault("parse_mode", PARSE_MODE)
    # As JSON already: an options object would be serialised again on every call.
    params.setdefault("link_preview_options", _LINK_PREVIEW_WIRE)
    await _api(bot, method, params)


async def _api(bot: Bot, method: str, params: dict[str, Any]) -> None:
    # Bot API method names are case-insensitive. In lower case, python-telegram-bot does not
    # recognise its own `Bot.editMessageText` alias in the name and skips the "Please use
    # Bot.editMessageText" warning that `do_api_request` would otherwise build and filter out
    # on every call (about 1% of a tap).
    await bot.do_api_request(method.lower(), api_kwargs=params)


# -- the gate ---------------------------------------------------------------------------------
async def arrive(update: Update, context: Context) -> Viewer | None:
    """Private chats only; look the Telegram user up and set the update's language."""
    tg_user = update.effective_user
    where = origin(update)
    if tg_user is None or where is None or tg_user.is_bot:
        return None
    current_language.set(resolve_language(tg_user.language_code))
    if not where.private:
        if update.callback_query is not None:
            await _answer(update.callback_query, Toast(t("access.private_only"), alert=True))
        elif update.effective_message is not None and _is_command(update.effective_message):
            await send(update, context, t("access.private_only"))
        return None
    svc = services(context)
    viewer = await services(context).run(svc.browse.viewer, tg_user.id)
    chosen = viewer.language()
    if chosen:
        current_language.set(chosen)
    if viewer.chat is not None and viewer.chat.blocked_at is not None:
        # They write again, so they unblocked the bot.
        await services(context).run(svc.browse.clear_blocked, tg_user.id)
    return viewer


def _is_command(message: Message) -> bool:
    return bool(message.text and message.text.startswith("/"))


LinkedHandler = Callable[[Update, Context, Linked], Awaitable[Toast | None]]


def gate(fn: LinkedHandler) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """Only linked users in private get to `fn`; refusals are told, taps always answered."""

    @functools.wraps(fn)
    async def wrapper(update: Update, context: Context) -> None:
        viewer = await arrive(update, context)
        if viewer is None:
            return
        query = update.callback_query
        me = viewer.linked
        if me is None:
            if query is not None:
                await _answer(query, Toast(t("access.unlinked_short"), alert=True))
            else:
                await send(update, context, t("access.unlinked"))
            return
        try:
            toast = await fn(update, context, me)
        except DomainError as exc:
            log.info("refused %s: %s %s", fn.__name__, exc.code, exc.data.get("reason", ""))
            if query is None:
                await send(update, context, render.refusal(exc))
                return
            toast = Toast(plain(render.refusal(exc)), alert=True)
        if query is not None:
            await _answer(query, toast)

    return wrapper


async def _answer(query: CallbackQuery, toast: Toast | None) -> None:
    """Every tap's answer (`toast` as plain text, at most 200 characters), like
    `query.answer()` but with only the fields that are set: python-telegram-bot's own method
    passes its six optional fields through `Defaults` and its request encoding on every tap."""
    params: dict[str, Any] = {"callback_query_id": query.id}
    if toast is not None:
        params["text"] = plain(toast.text)
        if toast.alert:
            params["show_alert"] = True
    await _api(query.get_bot(), "answerCallbackQuery", params)


# -- commands ---------------------------------------------------------------------------------
async def start(update: Update, context: Context) -> None:
    """/start [token]: link with a one-time token, or greet a linked user."""
    viewer = await arrive(update, context)
    if viewer is None:
        return
    svc = services(context)
    token = (context.args or [""])[0].strip()
    if not token:
        if viewer.user is None:
            await send(update, context, t("access.unlinked"))
        else:
            await send(update, context, t("start.linked", name=viewer.user.name))
        return
    tg_user = update.effective_user
    assert tg_user is not None
    try:
        user = await services(context).run(
            svc.lacre.link, token, tg_user.id, tg_user.full_name, current_language.get()
        )
    except LinkTokenInvalid as exc:
        await send(update, context, t(f"link.{exc.data.get('reason', 'unknown')}"))
        return
    balance = await services(context).run(svc.browse.balance, user.id)
    await send(
        update,
        context,
        t(
            "link.ok",
            name=user.name,
            account=balance.account.name,
            role=t(f"role.{user.role.value}"),
        ),
    )


@gate
async def envelopes(update: Update, context: Context, me: Linked) -> Toast | None:
    """/envelopes [termo]: the tabs, or a search by title or signer name."""
    term = " ".join(context.args or []).strip()
    await _list(update, context, me, Tab.PENDENTES, 0, term or None)
    return None


@gate
async def search_text(update: Update, context: Context, me: Linked) -> Toast | None:
    """Plain text in private is a search term (after "Buscar" or on its own)."""
    message = update.effective_message
    assert message is not None and message.text is not None
    await _list(update, context, me, Tab.BUSCA, 0, message.text)
    return None


@gate
async def balance(update: Update, context: Context, me: Linked) -> Toast | None:
    """/saldo: both balances side by side, plan, renewal, the lapse warning."""
    view = await services(context).run(services(context).browse.balance, me)
    await show(update, context, render.balance(view), kb.planos_only())
    return None


@gate
async def plans(update: Update, context: Context, me: Linked) -> Toast | None:
    """/planos: current plan, other plans and notification packs with "Adquirir" links."""
    svc = services(context)
    view = await services(context).run(svc.browse.plans, me)
    await show(update, context, render.plans(view), kb.plans(view, svc.payment_url_template))
    return None


@gate
async def history(update: Update, context: Context, me: Linked) -> Toast | None:
    """/historico: ledger entries, newest first, paged."""
    await _history(update, context, me, 0)
    return None


async def language(update: Update, context: Context) -> None:
    """/idioma: choose pt-BR, en or es (works before linking too)."""
    if await arrive(update, context) is None:
        return
    await send(update, context, t("language.choose"), kb.languages())


async def help_command(update: Update, context: Context) -> None:
    """/ajuda: what the bot does (linked) or how to link (unlinked)."""
    viewer = await arrive(update, context)
    if viewer is None:
        return
    await send(update, context, t("help.text" if viewer.user else "access.unlinked"))


@gate
async def unlink(update: Update, context: Context, me: Linked) -> Toast | None:
    """/desvincular: this Telegram user no longer acts for the account."""
    tg_user = update.effective_user
    assert tg_user is not None
    await services(context).run(services(context).lacre.unlink, tg_user.id)
    await send(update, context, t("unlink.done"))
    return None


@gate
async def unknown_command(update: Update, context: Context, me: Linked) -> Toast | None:
    """Any other command."""
    await send(update, context, t("unknown.command"))
    return None


async def group_message(update: Update, context: Context) -> None:
    """Groups see nothing: commands there get "fale comigo no privado"."""
    await arrive(update, context)


# -- buttons ----------------------------------------------------------------------------------
@gate
async def button(update: Update, context: Context, me: Linked) -> Toast | None:
    """Every tap of this bot's buttons: parse strictly, then re-check and act."""
    query = update.callback_query
    assert query is not None
    target = cb.parse(query.data)
    match target:
        case cb.OpenEnvelope(envelope_id):
            await _card(update, context, me, envelope_id)
        case cb.EnvelopeAction(envelope_id, CardAction.RESEND):
            return await _resend_menu(update, context, me, envelope_id)
        case cb.EnvelopeAction(envelope_id, action):
            return await _propose(update, context, me, envelope_id, Action(action.value))
        case cb.ResendAll(envelope_id):
            return await _resend_all(update, context, me, envelope_id, query.id)
        case cb.PickSigner(envelope_id, signer_id):
            choice = await services(context).run(
                services(context).browse.resend_choice, me, envelope_id, signer_id
            )
            await show(update, context, render.channel_menu(choice), kb.channel_menu(choice))
        case cb.ResendOne(envelope_id, signer_id, channel):
            return await _resend_one(update, context, me, envelope_id, signer_id, channel, query.id)
        case cb.Confirm(nonce):
            return await _confirm(update, context, me, nonce)
        case cb.Decline(nonce):
            confirmation = await services(context).run(
                services(context).confirmations.decline, me.id, nonce
            )
            await _card(update, context, me, confirmation.envelope_id)
            return Toast(t("confirm.declined"))
        case cb.ListPage(tab, page):
            await _list(update, context, me, tab, page, None)
        case cb.StartSearch():
            await send(update, context, t("search.prompt"), kb.force_reply())
        case cb.OpenPlans():
            svc = services(context)
            view = await services(context).run(svc.browse.plans, me)
            await show(
                update, context, render.plans(view), kb.plans(view, svc.payment_url_template)
            )
        case cb.HistoryPage(page):
            await _history(update, context, me, page)
        case cb.ChooseLanguage(code):
            return await _choose_language(update, context, code)
        case None:
            log.warning("malformed callback data refused (%d bytes)", len(query.data or ""))
            return Toast(t("button.invalid"), alert=True)
    return None


async def stale_button(update: Update, context: Context) -> None:
    """Callback data no handler owns: answered, nothing changes."""
    if await arrive(update, context) is None:
        return
    query = update.callback_query
    assert query is not None
    await _answer(query, Toast(t("button.invalid"), alert=True))


async def language_button(update: Update, context: Context) -> None:
    """`lang:` taps work for unlinked users too (the language is kept per Telegram user)."""
    if await arrive(update, context) is None:
        return
    query = update.callback_query
    assert query is not None
    target = cb.parse(query.data)
    if not isinstance(target, cb.ChooseLanguage):
        await _answer(query, Toast(t("button.invalid"), alert=True))
        return
    await _answer(query, await _choose_language(update, context, target.language))


# -- the steps behind buttons and commands ------------------------------------------------------
async def _list(
    update: Update, context: Context, me: Linked, tab: Tab, page: int, term: str | None
) -> None:
    view = await services(context).run(services(context).browse.listing, me, tab, page, term)
    await show(update, context, render.envelope_list(view), kb.envelope_list(view))


async def _history(update: Update, context: Context, me: Linked, page: int) -> None:
    view = await services(context).run(services(context).browse.history, me, page)
    await show(update, context, render.history(view), kb.history(view))


async def _card(update: Update, context: Context, me: Linked, envelope_id: int) -> None:
    card = await services(context).run(services(context).browse.card, me, envelope_id)
    await show(update, context, render.envelope_card(card), kb.envelope_card(card))


async def _propose(
    update: Update, context: Context, me: Linked, envelope_id: int, action: Action
) -> Toast | None:
    svc = services(context)
    try:
        if action is Action.SEAL:
            proposal = await services(context).run(
                svc.confirmations.propose_seal, me.id, envelope_id
            )
            text = render.seal_confirm(proposal)
            nonce = proposal.confirmation.nonce
        else:
            transition = await services(context).run(
                svc.confirmations.propose_transition, me.id, envelope_id, action
            )
            text = render.transition_confirm(transition)
            nonce = transition.confirmation.nonce
    except InsufficientCredits as exc:
        await show(update, context, render.refusal(exc), kb.back_to(envelope_id, plans=True))
        return None
    except InvalidState as exc:
        # The card was stale: show the current one and say why.
        await _card(update, context, me, envelope_id)
        return Toast(render.refusal(exc), alert=True)
    await show(update, context, text, kb.confirm(nonce))
    return None


async def _resend_menu(
    update: Update, context: Context, me: Linked, envelope_id: int
) -> Toast | None:
    svc = services(context)
    env = await services(context).run(svc.lacre.envelope, me.id, envelope_id)
    now = svc.browse.clock.now()
    if env.status is not EnvelopeStatus.PENDENTE or env.is_expired(now):
        await _card(update, context, me, envelope_id)
        return Toast(
            render.sentence(
                render.why(
                    "envelope_state" if not env.is_expired(now) else "expired",
                    {"status": env.display_status(now)},
                )
            ),
            alert=True,
        )
    await show(update, context, render.resend_menu(env, now), kb.resend_menu(env))
    return None


async def _resend_all(
    update: Update, context: Context, me: Linked, envelope_id: int, query_id: str
) -> Toast | None:
    # The query id keys the request: a redelivered update cannot send twice.
    ids = await services(context).run(
        services(context).lacre.resend_all_email, me.id, envelope_id, f"cq:{query_id}"
    )
    await send(
        update,
        context,
        t("send.all_queued", count=number(len(ids))),
        kb.back_to(envelope_id),
    )
    return Toast(t("toast.sent"))


async def _resend_one(
    update: Update,
    context: Context,
    me: Linked,
    envelope_id: int,
    signer_id: int,
    channel: Channel,
    query_id: str,
) -> Toast | None:
    svc = services(context)
    if not channel.is_paid:
        result, name = await svc.run(
            _send_free, svc, me.id, envelope_id, signer_id, f"cq:{query_id}"
        )
        await send(update, context, render.send_done(result, name), kb.back_to(envelope_id))
        return Toast(t("toast.sent"))
    try:
        proposal = await services(context).run(
            svc.confirmations.propose_send, me.id, envelope_id, signer_id, channel
        )
    except InsufficientCredits as exc:
        await send(update, context, render.refusal(exc), kb.back_to(envelope_id, plans=True))
        return None
    await send(
        update, context, render.send_confirm(proposal), kb.confirm(proposal.confirmation.nonce)
    )
    return None


def _send_free(
    svc: BotServices, user_id: int, envelope_id: int, signer_id: int, key: str
) -> tuple[SendResult, str]:
    result = svc.lacre.request_send(user_id, envelope_id, signer_id, Channel.EMAIL, key)
    return result, svc.browse.about(envelope_id, signer_id)[1]


def _confirm_and_load(
    svc: BotServices, user_id: int, nonce: str
) -> tuple[Confirmed, Envelope | EnvelopeSummary, str]:
    done = svc.confirmations.confirm(user_id, nonce)
    if done.envelope is not None:
        return done, done.envelope, ""
    c = done.confirmation
    summary, signer_name = svc.browse.about(c.envelope_id, c.signer_id)
    return done, summary, signer_name


async def _confirm(update: Update, context: Context, me: Linked, nonce: str) -> Toast | None:
    svc = services(context)
    try:
        done, env, signer_name = await svc.run(_confirm_and_load, svc, me.id, nonce)
    except DomainError as exc:
        envelope_id = exc.data.get("envelope_id")
        if not isinstance(envelope_id, int):
            raise
        # Used, expired, price changed, not enough credits: say why in place, charge nothing.
        plans_button = isinstance(exc, InsufficientCredits)
        await show(
            update, context, render.refusal(exc), kb.back_to(envelope_id, plans=plans_button)
        )
        return None
    c = done.confirmation
    if c.action is not Action.SEND:
        svc.browse.forget_counts(c.account_id)
    if done.seal is not None:
        text = render.seal_done(env, done.seal)
    elif done.send is not None:
        text = render.send_done(done.send, signer_name)
    else:
        text = render.transition_done(c.action.value, env)
    await show(update, context, text, kb.back_to(c.envelope_id))
    return Toast(t("toast.done"))


async def _choose_language(update: Update, context: Context, code: str) -> Toast | None:
    tg_user = update.effective_user
    assert tg_user is not None
    await services(context).run(services(context).browse.set_language, tg_user.id, code)
    current_language.set(code)
    await show(update, context, t("language.saved", language=t(f"language.{code}")))
    return None


# -- errors -----------------------------------------------------------------------------------
async def _blocked(update: object, context: Context) -> None:
    """Telegram refused with 403. In the user's private chat that means they blocked the bot:
    marked, and nothing is sent to them (reminders, notices) until they write again. In a group
    it means the bot was removed from it or muted there, which says nothing of the user."""
    if not isinstance(update, Update):
        return
    tg_user, where = update.effective_user, origin(update)
    if tg_user is None or where is None or not where.private or where.chat_id != tg_user.id:
        log.info(
            "Telegram refused a %s chat; nobody marked", where.chat_type if where else "missing"
        )
        return
    await services(context).run(services(context).browse.mark_blocked, tg_user.id)
    log.info("user blocked the bot; marked and not retried")


async def on_error(update: object, context: Context) -> None:
    """Log with an id and tell the user that id; a user who blocked the bot is marked."""
    error = context.error
    if isinstance(error, Forbidden):
        await _blocked(update, context)
        return
    error_id = secrets.token_hex(4)
    log.error("update failed [error %s]", error_id, exc_info=error)
    if not isinstance(update, Update):
        return
    text = t("error.unexpected", error_id=error_id)
    try:
        if update.callback_query is not None:
            await _answer(update.callback_query, Toast(text, alert=True))
        elif (where := origin(update)) is not None:
            await call(context.bot, "sendMessage", chat_id=where.chat_id, text=text)
    except Forbidden:
        await _blocked(update, context)
    except TelegramError as exc:
        log.warning("could not tell the user about error %s: %s", error_id, exc.message)
