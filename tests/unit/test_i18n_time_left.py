"""`i18n.time_left`: Babel's `format_timedelta(seconds, threshold=1.1)` to the letter, with the
unit and its rounding chosen outside Babel and the words kept per unit and count."""

from __future__ import annotations

from babel.dates import format_timedelta
from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import LANGUAGES, babel_locale, current_language, time_left

YEAR = 365 * 86400


def babel(seconds: int, language: str) -> str:
    return format_timedelta(seconds, threshold=1.1, locale=babel_locale(language))


def test_every_minute_of_four_days_and_every_hour_of_three_years_read_as_babel_writes_them() -> (
    None
):
    # Every boundary between seconds, minutes, hours, days, weeks, months and years, and every
    # rounding in between (a half rounds to even, as Python's `round` does in Babel).
    for language in LANGUAGES:
        for seconds in [*range(0, 200), *range(0, 4 * 86400, 60), *range(0, 3 * YEAR, 3600)]:
            assert time_left(seconds, language) == babel(seconds, language), (seconds, language)


@given(
    seconds=st.one_of(st.integers(-10 * YEAR, 10 * YEAR), st.floats(-1e9, 1e9)),
    language=st.sampled_from(LANGUAGES),
)
def test_any_duration_reads_as_babel_writes_it(seconds: float, language: str) -> None:
    assert time_left(seconds, language) == babel(int(seconds), language)


def test_the_language_of_the_update_by_default() -> None:
    token = current_language.set("es")
    try:
        assert time_left(3 * 86400) == "3 días"
    finally:
        current_language.reset(token)
    assert time_left(3 * 86400, "pt-BR") == "3 dias"
    assert time_left(90 * 60, "en") == "2 hours"
