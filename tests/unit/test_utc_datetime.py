"""`storage.tables.UTCDateTime` on SQLite: its own text conversions write and read exactly what
SQLAlchemy's DATETIME would, aware UTC in and out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from storage.tables import UTCDateTime

DIALECT = sqlite.dialect()
BIND = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
RESULT = UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None)
SQLALCHEMY_BIND = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)

zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)


@given(moments)
def test_the_text_written_is_sqlalchemys_for_the_same_moment_in_utc(moment: datetime) -> None:
    assert BIND is not None and SQLALCHEMY_BIND is not None
    expected = SQLALCHEMY_BIND(moment.astimezone(UTC).replace(tzinfo=None))
    assert BIND(moment) == expected


@given(moments)
def test_what_is_written_reads_back_as_the_same_aware_utc_moment(moment: datetime) -> None:
    assert BIND is not None and RESULT is not None
    back = RESULT(BIND(moment))
    assert back == moment and back.tzinfo is UTC


def test_text_with_an_offset_of_its_own_is_read_in_utc_and_none_stays_none() -> None:
    assert RESULT is not None and BIND is not None
    shifted = RESULT("2026-11-27 12:00:00+02:00")
    assert shifted == datetime(2026, 11, 27, 10, 0, tzinfo=UTC) and shifted.tzinfo is UTC
    assert RESULT("2026-11-27 12:00:00") == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert RESULT(None) is None and BIND(None) is None


def test_a_naive_datetime_is_refused() -> None:
    assert BIND is not None
    with pytest.raises(ValueError, match="naive"):
        BIND(datetime(2026, 11, 27, 12, 0))


def test_postgresql_keeps_the_driver_s_own_conversions() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    moment = datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert bind is not None and bind(moment) == moment.astimezone(UTC)
