"""Hot SELECTs compiled once per dialect and run on the driver's own cursor (decision 0007).

`Connection.execute` costs about 20 µs per statement in SQLAlchemy's execution machinery
(execution context, events, result metadata) before SQLite spends 2 µs on it; the bot runs a
handful of these reads on every update. A `Prepared` statement is an ordinary Core `select()`,
compiled by the connection's own dialect the first time it runs there; later runs convert the
parameters and the row values with the same type processors SQLAlchemy would use (public
`TypeEngine.dialect_impl(...).bind_processor/result_processor`) and go straight to the DBAPI
connection of the same `Connection`, inside its transaction.

Only plain SELECTs: no expanding (`IN` list) parameters, no post-compile values. Writes keep
going through `Connection.execute`, whose rowcounts and RETURNING they use.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any]


class _Plan:
    """One statement as one dialect runs it."""

    __slots__ = ("binds", "columns", "defaults", "order", "row", "sql")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a prepared statement cannot have expanding or post-compile values")
        self.sql = compiled.string
        # Values written into the statement (literal(...)) travel as parameters.
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.binds: tuple[tuple[str, _Processor], ...] = tuple(
            (name, proc)
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        )
        keys = [column.name for column in stmt.selected_columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a prepared statement needs distinct column names: {keys}")
        self.columns: tuple[tuple[int, _Processor], ...] = tuple(
            (i, proc)
            for i, column in enumerate(stmt.selected_columns)
            if (proc := column.type.dialect_impl(dialect).result_processor(dialect, None))
            is not None
        )
        self.row: Any = namedtuple("Row", keys)  # type: ignore[misc]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.defaults, **params}
        for name, proc in self.binds:
            if name in values:
                values[name] = proc(values[name])
        bound: Any = values if self.order is None else tuple(values[n] for n in self.order)
        if not conn.in_transaction():
            conn.begin()  # the same transaction the unit of work's writes will use
        fetched = conn.connection.driver_connection.execute(self.sql, bound).fetchall()  # type: ignore[union-attr]
        make = self.row._make
        if not self.columns:
            return [make(r) for r in fetched]
        out = []
        for r in fetched:
            row = list(r)
            for i, proc in self.columns:
                row[i] = proc(row[i])
            out.append(make(row))
        return out


class Prepared:
    """A SELECT built once at import time; `all`/`first` run it on a connection."""

    __slots__ = ("_plans", "stmt")

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    def plan(self, conn: Connection) -> _Plan:
        dialect = conn.dialect
        # What the compiled text depends on: the dialect's kind, paramstyle and server version.
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self.stmt, dialect)
        return plan

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        return self.plan(conn).run(conn, params)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        rows = self.plan(conn).run(conn, params)
        return rows[0] if rows else None
