"""Texts in pt-BR, en and es from gettext catalogs (Babel), plus locale-aware formatting.

Catalogs live in `bot/locales/<lang>/LC_MESSAGES/<domain>.po`, one domain per feature
(`bot.po`, `delivery.po`, `scheduler.po`, ...); every domain is loaded and merged. Message ids
are stable keys such as `seal.confirm`; values use `{name}` placeholders. Values passed to
`t()` are HTML-escaped unless wrapped in `Raw`.
"""

from __future__ import annotations

import html
import math
import string
from contextvars import ContextVar
from datetime import date, datetime, time
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import TIMEDELTA_UNITS, get_datetime_format
from babel.dates import format_date as _babel_date
from babel.dates import format_time as _babel_time
from babel.dates import format_timedelta as _babel_timedelta
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("pt-BR", "en", "es")
DEFAULT_LANGUAGE = "pt-BR"
LOCALES_DIR = Path(__file__).parent / "locales"
_DIRS = {"pt-BR": "pt_BR", "en": "en", "es": "es"}

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


class Raw(str):
    """A value already safe for Telegram HTML (for example a rendered fragment)."""

    __slots__ = ()


def resolve_language(code: str | None) -> str:
    """Map a Telegram `language_code` (pt, pt-br, es-419, en-US, ...) to one we speak."""
    if not code:
        return DEFAULT_LANGUAGE
    low = code.lower().replace("_", "-")
    if low.startswith("pt"):
        return "pt-BR"
    if low.startswith("es"):
        return "es"
    if low.startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


@cache
def catalog(language: str) -> dict[str, str]:
    """Every message of every domain for one language."""
    messages: dict[str, str] = {}
    folder = LOCALES_DIR / _DIRS[language] / "LC_MESSAGES"
    for po in sorted(folder.glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh, locale=_DIRS[language]):
                if message.id and isinstance(message.id, str):
                    messages[message.id] = str(message.string or "")
    return messages


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def template(key: str, language: str | None = None) -> str:
    """The text for `key` in `language` (default: the current update's) before it is filled in.

    A key missing in a language falls back to pt-BR; a key missing everywhere is returned as
    itself, so a gap shows up in tests rather than as a crash in front of a user.
    """
    lang = language or current_language.get()
    return catalog(lang).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key


def t(key: str, language: str | None = None, /, **values: object) -> str:
    """The text for `key` in `language` (default: the current update's), filled in: see
    `template`; values are HTML-escaped unless `Raw`."""
    text = template(key, language)
    if not values:
        # Most labels and words have no placeholder; only braces need `format` ("{{" is "{").
        return text.format() if "{" in text or "}" in text else text
    # `values` is this call's own dict: escaping in place spares building a second one, and
    # `format_map` spares unpacking it again (templates have named fields only).
    for name, value in values.items():
        if not isinstance(value, Raw):
            values[name] = html.escape(str(value), quote=False)
    return text.format_map(values)


def babel_locale(language: str | None = None) -> Locale:
    return _babel_locale(language or current_language.get())


@lru_cache(maxsize=8)
def _babel_locale(language: str) -> Locale:
    # `Locale.parse` took a third of every number's formatting; we speak three languages.
    return Locale.parse(language.replace("-", "_"))


def number(value: int | float, language: str | None = None) -> str:
    return format_decimal(value, locale=babel_locale(language))


def when(moment: datetime, timezone: str, language: str | None = None) -> str:
    """A date and time in the account's zone, e.g. "10/12/2026 18:00" in pt-BR.

    Babel's `format_datetime(..., "short")` to the letter (its pattern for the two, the short
    date and the short time put in), with the date kept per day and the time per minute: a list
    of envelopes with deadlines of their own would otherwise format each one anew."""
    local = moment.astimezone(ZoneInfo(timezone))
    lang = language or current_language.get()
    return (
        _short_datetime_pattern(lang)
        .replace("{0}", _short_time(local.hour, local.minute, lang))
        .replace("{1}", _short_date(local.date(), lang))
    )


@cache
def _short_datetime_pattern(language: str) -> str:
    return str(get_datetime_format("short", locale=babel_locale(language))).replace("'", "")


@lru_cache(maxsize=8192)
def _short_date(day: date, language: str) -> str:
    return _babel_date(day, "short", locale=babel_locale(language))


@lru_cache(maxsize=8192)  # a day's minutes in three languages
def _short_time(hour: int, minute: int, language: str) -> str:
    return _babel_time(time(hour, minute), "short", locale=babel_locale(language))


_DURATION_THRESHOLD = 1.1
_SECONDS_PER = dict(TIMEDELTA_UNITS)


def time_left(delta_seconds: float, language: str | None = None) -> str:
    """A rough duration, e.g. "3 dias" / "in 3 days" style without direction.

    Babel's `format_timedelta(seconds, threshold=1.1)` to the letter: its choice of unit and
    its rounding are done here, on its own table of units, and the words for each unit and
    count are kept (deadlines move every minute, so a cache by duration would rarely hit)."""
    seconds = abs(int(delta_seconds))
    for unit, per_unit in TIMEDELTA_UNITS:
        value = seconds / per_unit
        if value >= _DURATION_THRESHOLD or unit == "second":
            if unit == "second" and value > 0:
                value = max(1, value)
            return _duration(unit, round(value), language or current_language.get())
    raise AssertionError("Babel's units end with the second")  # pragma: no cover


@lru_cache(maxsize=4096)
def _duration(unit: str, count: int, language: str) -> str:
    # With no threshold to reach, Babel passes every larger unit, stops at `granularity` and
    # keeps the count as it is: the words it would choose for `count` of `unit`.
    return _babel_timedelta(
        count * _SECONDS_PER[unit],
        granularity=unit,  # type: ignore[arg-type]
        threshold=math.inf,
        locale=babel_locale(language),
    )


def clear_caches() -> None:
    """Forget every date, time and duration formatted so far, as a new process starts."""
    for cached in (_short_date, _short_time, _duration):
        cached.cache_clear()
