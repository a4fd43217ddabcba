"""`i18n.when`: Babel's short date and time in the account's zone, to the letter, with the date
kept per day and the time per minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import LANGUAGES, babel_locale, when

ZONES = ("America/Sao_Paulo", "America/Manaus", "America/New_York", "Asia/Kolkata", "UTC")


def babel(moment: datetime, zone: str, language: str) -> str:
    return format_datetime(
        moment.astimezone(ZoneInfo(zone)), "short", locale=babel_locale(language)
    )


def test_every_minute_of_a_day_reads_as_babel_writes_it() -> None:
    start = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    for language in LANGUAGES:
        for minute in range(24 * 60):
            moment = start + timedelta(minutes=minute, seconds=59)
            assert when(moment, "America/Sao_Paulo", language) == babel(
                moment, "America/Sao_Paulo", language
            )


def test_the_examples_in_each_language() -> None:
    moment = datetime(2026, 12, 10, 21, 5, tzinfo=UTC)
    assert when(moment, "America/Sao_Paulo", "pt-BR") == "10/12/2026 18:05"
    assert when(moment, "America/Sao_Paulo", "es") == "10/12/26, 18:05"
    assert when(moment, "America/Sao_Paulo", "en").startswith("12/10/26, 6:05")


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(ZONES),
    st.sampled_from(LANGUAGES),
)
def test_any_moment_in_any_zone_reads_as_babel_writes_it(
    moment: datetime, zone: str, language: str
) -> None:
    assert when(moment, zone, language) == babel(moment, zone, language)


def test_the_days_around_a_daylight_saving_change() -> None:
    """New York's clocks went back on 2026-11-01: 01:30 came twice, an hour apart."""
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    for moment in (first, first + timedelta(hours=1), datetime(2026, 3, 8, 7, 30, tzinfo=UTC)):
        for language in LANGUAGES:
            assert when(moment, "America/New_York", language) == babel(
                moment, "America/New_York", language
            )
