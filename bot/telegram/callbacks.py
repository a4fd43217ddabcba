"""Callback data: short ASCII strings (<= 64 bytes), parsed strictly; anything else is refused.

The formats are an interface (the scheduler's nudges carry `rsa:`, `rsc:` and `env:` buttons):

    env:<envelope_id>                                open or refresh the envelope card
    env:<envelope_id>:seal|block|unblock|cancel|resend   start that action
    rsa:<envelope_id>                                free e-mail to every pending signer
    rsc:<envelope_id>:<signer_id>:email|sms|whatsapp     resend to one signer on a channel
    sg:<envelope_id>:<signer_id>                     pick a channel for one signer
    ok:<nonce>  /  no:<nonce>                        confirm / decline a pending confirmation
    ls:<tab>:<page>                                  envelope list tab and page
    find                                             ask for a search term
    pl                                               open "Planos"
    hs:<page>                                        ledger history page
    lang:<pt-BR|en|es>                               choose the language
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from core.browse import CardAction, Tab
from core.notifications import Channel

MAX_BYTES = 64
_ID = r"[1-9][0-9]{0,17}"  # database ids: positive, no leading zeros, fits 64 bits
_PAGE = r"0|[1-9][0-9]{0,5}"
_NONCE = r"[A-Za-z0-9_-]{16,43}"
LANGUAGE_CODES = ("pt-BR", "en", "es")


@dataclass(frozen=True)
class OpenEnvelope:
    envelope_id: int


@dataclass(frozen=True)
class EnvelopeAction:
    envelope_id: int
    action: CardAction


@dataclass(frozen=True)
class ResendAll:
    envelope_id: int


@dataclass(frozen=True)
class PickSigner:
    envelope_id: int
    signer_id: int


@dataclass(frozen=True)
class ResendOne:
    envelope_id: int
    signer_id: int
    channel: Channel


@dataclass(frozen=True)
class Confirm:
    nonce: str


@dataclass(frozen=True)
class Decline:
    nonce: str


@dataclass(frozen=True)
class ListPage:
    tab: Tab
    page: int


@dataclass(frozen=True)
class StartSearch:
    pass


@dataclass(frozen=True)
class OpenPlans:
    pass


@dataclass(frozen=True)
class HistoryPage:
    page: int


@dataclass(frozen=True)
class ChooseLanguage:
    language: str


Button = (
    OpenEnvelope
    | EnvelopeAction
    | ResendAll
    | PickSigner
    | ResendOne
    | Confirm
    | Decline
    | ListPage
    | StartSearch
    | OpenPlans
    | HistoryPage
    | ChooseLanguage
)

_ACTIONS = "|".join(a.value for a in CardAction)
_CHANNELS = "|".join(c.value for c in Channel)
_TABS = "|".join(t.value for t in Tab)
_LANGS = "|".join(re.escape(code) for code in LANGUAGE_CODES)

_PATTERNS: list[tuple[re.Pattern[str], type]] = [
    (re.compile(rf"env:(?P<envelope_id>{_ID})"), OpenEnvelope),
    (re.compile(rf"env:(?P<envelope_id>{_ID}):(?P<action>{_ACTIONS})"), EnvelopeAction),
    (re.compile(rf"rsa:(?P<envelope_id>{_ID})"), ResendAll),
    (re.compile(rf"sg:(?P<envelope_id>{_ID}):(?P<signer_id>{_ID})"), PickSigner),
    (
        re.compile(rf"rsc:(?P<envelope_id>{_ID}):(?P<signer_id>{_ID}):(?P<channel>{_CHANNELS})"),
        ResendOne,
    ),
    (re.compile(rf"ok:(?P<nonce>{_NONCE})"), Confirm),
    (re.compile(rf"no:(?P<nonce>{_NONCE})"), Decline),
    (re.compile(rf"ls:(?P<tab>{_TABS}):(?P<page>{_PAGE})"), ListPage),
    (re.compile(r"find"), StartSearch),
    (re.compile(r"pl"), OpenPlans),
    (re.compile(rf"hs:(?P<page>{_PAGE})"), HistoryPage),
    (re.compile(rf"lang:(?P<language>{_LANGS})"), ChooseLanguage),
]


def _head(pattern: re.Pattern[str]) -> str:
    return pattern.pattern.split(":", 1)[0]


# Every format starts with a literal head ("env", "ls", "find", ...) ended by ":" or by the
# data itself, so data can only match the patterns of its own head: `parse` tries just those,
# in the order above, instead of all twelve.
_BY_HEAD: dict[str, list[tuple[re.Pattern[str], type]]] = {
    _head(pattern): [(p, kind) for p, kind in _PATTERNS if _head(p) == _head(pattern)]
    for pattern, _ in _PATTERNS
}

# Fields that are not text, and how to read them. The patterns admit only valid values, so the
# enums are read by a plain lookup (calling an enum class is several times slower).
_FIELDS: dict[str, Callable[[str], object]] = {
    "envelope_id": int,
    "signer_id": int,
    "page": int,
    "action": {a.value: a for a in CardAction}.__getitem__,
    "channel": {c.value: c for c in Channel}.__getitem__,
    "tab": {t.value: t for t in Tab}.__getitem__,
}

# Prefixes this module owns: the bot's button handler takes only these (others, such as the
# scheduler's `mute:`, go to their own handlers).
PREFIX_PATTERN = r"^(env|rsa|rsc|sg|ok|no|ls|hs|lang)(:|$)|^(find|pl)$"


def parse(data: str | None) -> Button | None:
    """The button this data stands for, or None for anything malformed or oversized."""
    # ASCII first: then the length in characters is the length in bytes.
    if not data or not data.isascii() or len(data) > MAX_BYTES:
        return None
    for pattern, kind in _BY_HEAD.get(data.split(":", 1)[0], ()):
        match = pattern.fullmatch(data)
        if match is None:
            continue
        values: dict[str, object] = {}
        for name, raw in match.groupdict().items():
            read = _FIELDS.get(name)
            values[name] = raw if read is None else read(raw)
        button: Button = kind(**values)
        return button
    return None


def format_data(button: Button) -> str:
    """The callback data of a button; raises ValueError past Telegram's 64 bytes."""
    match button:
        case OpenEnvelope(envelope_id):
            data = f"env:{envelope_id}"
        case EnvelopeAction(envelope_id, action):
            data = f"env:{envelope_id}:{action.value}"
        case ResendAll(envelope_id):
            data = f"rsa:{envelope_id}"
        case PickSigner(envelope_id, signer_id):
            data = f"sg:{envelope_id}:{signer_id}"
        case ResendOne(envelope_id, signer_id, channel):
            data = f"rsc:{envelope_id}:{signer_id}:{channel.value}"
        case Confirm(nonce):
            data = f"ok:{nonce}"
        case Decline(nonce):
            data = f"no:{nonce}"
        case ListPage(tab, page):
            data = f"ls:{tab.value}:{page}"
        case StartSearch():
            data = "find"
        case OpenPlans():
            data = "pl"
        case HistoryPage(page):
            data = f"hs:{page}"
        case ChooseLanguage(language):
            data = f"lang:{language}"
    if len(data.encode("ascii")) > MAX_BYTES or parse(data) != button:
        raise ValueError(f"cannot encode {button!r} as callback data")
    return data
