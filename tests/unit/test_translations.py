"""Every text key exists, non-empty, in pt-BR, en and es, with the same placeholders."""

from __future__ import annotations

import string
from datetime import UTC, datetime

from bot.i18n import LANGUAGES, Raw, catalog, placeholders, resolve_language, t, when


def test_every_key_has_a_translation_in_every_language() -> None:
    keys = set().union(*(catalog(lang) for lang in LANGUAGES))
    assert keys, "no catalogs were loaded"
    missing = [(lang, k) for lang in LANGUAGES for k in sorted(keys) if not catalog(lang).get(k)]
    assert missing == []


def test_placeholders_agree_across_languages() -> None:
    for key, text in catalog("pt-BR").items():
        for lang in ("en", "es"):
            assert placeholders(catalog(lang)[key]) == placeholders(text), (lang, key)


def test_values_are_html_escaped_unless_raw() -> None:
    assert t("pool.credits", "en") == "credits"
    from bot import i18n

    i18n.catalog("en")["test.echo"] = "<b>{name}</b>"
    try:
        assert t("test.echo", "en", name="<Ana & Co>") == "<b>&lt;Ana &amp; Co&gt;</b>"
        assert t("test.echo", "en", name=Raw("<i>x</i>")) == "<b><i>x</i></b>"
    finally:
        del i18n.catalog("en")["test.echo"]


def test_texts_without_values_still_read_doubled_braces() -> None:
    from bot import i18n

    i18n.catalog("en")["test.braces"] = "{{literal}}"
    try:
        assert t("test.braces", "en") == "{literal}"
        assert t("test.unknown.key", "en") == "test.unknown.key"
    finally:
        del i18n.catalog("en")["test.braces"]


def test_placeholders_are_named() -> None:
    """`t` fills templates with `format_map`, which takes named fields only."""
    for lang in LANGUAGES:
        for key, text in catalog(lang).items():
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
            assert all(f and not f[0].isdigit() for f in fields), (lang, key)


def test_telegram_language_codes_map_to_ours() -> None:
    assert [resolve_language(c) for c in ("pt-br", "pt", "es-419", "en-US", "de", None)] == [
        "pt-BR",
        "pt-BR",
        "es",
        "en",
        "pt-BR",
        "pt-BR",
    ]


def test_dates_are_shown_in_the_account_time_zone() -> None:
    moment = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    assert when(moment, "America/Sao_Paulo", "pt-BR") == "01/12/2026 18:00"
    assert when(moment, "America/Manaus", "pt-BR") == "01/12/2026 17:00"
