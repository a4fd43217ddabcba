"""Hot statements compiled once per dialect and run on the driver's own cursor (decision 0007).

`Connection.execute` costs about 20 µs per statement in SQLAlchemy's execution machinery
(execution context, events, result metadata) before SQLite spends 2 µs on it; the bot runs a
handful of statements on every update. A prepared statement is an ordinary Core statement,
compiled by the connection's own dialect the first time it runs there; later runs convert the
parameters (and a SELECT's values) with the type processors SQLAlchemy would use (the public
`TypeEngine.dialect_impl(...).bind_processor / result_processor`) and go straight to the DBAPI
connection of the same `Connection`, inside its transaction.

- `Prepared`: a SELECT; rows come back as named tuples.
- `PreparedWrite`: an INSERT or UPDATE whose every value is a named `bindparam` the caller
  passes; it answers the driver's cursor (rowcount, RETURNING rows).

Refused at the first run: expanding (`IN` list) or post-compile parameters, repeated column
names, and writes for which SQLAlchemy would compute a column default itself.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_Processor = Callable[[Any], Any]
_P = TypeVar("_P")


class _Compiled:
    """A statement's text for one dialect and how its parameters are bound."""

    __slots__ = ("binds", "defaults", "names", "order", "sql")

    def __init__(
        self, stmt: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None
    ) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=column_keys))
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a prepared statement cannot have expanding or post-compile values")
        self.sql = compiled.string
        self.names = frozenset(compiled.binds)
        # Values written into the statement (literal(...)) travel as parameters.
        self.defaults = {
            k: v
            for k, v in compiled.params.items()
            if v is not None and not compiled.binds[k].required
        }
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.binds: tuple[tuple[str, _Processor], ...] = tuple(
            (name, proc)
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        )

    def bound(self, params: Mapping[str, Any]) -> Any:
        values = {**self.defaults, **params}
        for name, proc in self.binds:
            if name in values:
                values[name] = proc(values[name])
        return values if self.order is None else tuple(values[n] for n in self.order)


DRIVER_IN_TRANSACTION = "lacre_driver_in_transaction"
"""Execution option: a callable that answers the DBAPI connection inside the unit of work's
transaction, begun on the driver itself. `storage.uow` sets it on warm SQLite sessions."""


def _driver(conn: Connection) -> Any:
    """The DBAPI connection, inside the unit of work's transaction (begun here if none is
    open, so that the unit of work's later statements share its snapshot and locks)."""
    in_transaction = conn.get_execution_options().get(DRIVER_IN_TRANSACTION)
    if in_transaction is not None:
        return in_transaction()
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection


class _Plan(_Compiled):
    """A SELECT as one dialect runs it."""

    __slots__ = ("columns", "row")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        super().__init__(stmt, dialect)
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
        fetched = _driver(conn).execute(self.sql, self.bound(params)).fetchall()
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


class _PerDialect(Generic[_P]):
    """A statement's plans, one per dialect that ran it (built at its first run there)."""

    __slots__ = ("_plans",)

    def __init__(self) -> None:
        self._plans: dict[tuple[Any, ...], _P] = {}

    def _build(self, dialect: Dialect) -> _P:
        raise NotImplementedError

    def plan(self, conn: Connection) -> _P:
        dialect = conn.dialect
        # What the compiled text depends on: the dialect's kind, paramstyle and server version.
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._build(dialect)
        return plan


class Prepared(_PerDialect[_Plan]):
    """A SELECT built once at import time; `all`/`first` run it on a connection."""

    __slots__ = ("stmt",)

    def __init__(self, stmt: Select[Any]) -> None:
        super().__init__()
        self.stmt = stmt

    def _build(self, dialect: Dialect) -> _Plan:
        return _Plan(self.stmt, dialect)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        return self.plan(conn).run(conn, params)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        rows = self.plan(conn).run(conn, params)
        return rows[0] if rows else None


class _WritePlan(_Compiled):
    __slots__ = ()

    def __init__(self, stmt: ClauseElement, dialect: Dialect, names: frozenset[str]) -> None:
        # An INSERT without `.values()` takes its columns from the names, as `execute` would.
        super().__init__(stmt, dialect, sorted(names))
        # A bind nobody passes is a column default SQLAlchemy would compute at execution time.
        missing = self.names - names - set(self.defaults)
        if missing:
            raise ValueError(f"a prepared write must be given every value: {sorted(missing)}")


class PreparedWrite(_PerDialect[_WritePlan]):
    """An INSERT or UPDATE built once, with the names of the parameters callers pass."""

    __slots__ = ("names", "stmt")

    def __init__(self, stmt: ClauseElement, names: Iterable[str]) -> None:
        super().__init__()
        self.stmt = stmt
        self.names = frozenset(names)

    def _build(self, dialect: Dialect) -> _WritePlan:
        return _WritePlan(self.stmt, dialect, self.names)

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The driver's cursor: `rowcount`, and `fetchone()` / `fetchall()` for RETURNING."""
        plan = self.plan(conn)
        cursor = _driver(conn).cursor()
        cursor.execute(plan.sql, plan.bound(params))
        return cursor

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        plan = self.plan(conn)
        _driver(conn).cursor().executemany(plan.sql, [plan.bound(r) for r in rows])
