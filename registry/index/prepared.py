"""SQLite's writes without SQLAlchemy's work on each execution.

On the writer thread, a SQLAlchemy execution of an already compiled statement costs about 15 us
before SQLite sees it (cache key, execution context, parameter and result processing) against 2-3 us
for the same statement on the `sqlite3` connection itself. A manifest PUT runs about eight statements;
with group commit that Python time, not SQLite's, was most of what the single writer thread spent.

So the index's own write statements (built once, `_WriteStatements`) are compiled once more, here, to
SQLite's SQL with their parameter order, their parameters' type conversions and the Python-side
column defaults an insert fills in, and run straight on the connection's `sqlite3` handle, inside
the transaction SQLAlchemy began. Only statements whose answers need no conversion (integers, text,
row counts) are taken; any other statement, and every statement built elsewhere, goes through
SQLAlchemy as before. PostgreSQL never comes here (its writes run through asyncpg's own prepared
statements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

_EXPANDED = "__[POSTCOMPILE_{}]"
# How a parameter's value is found: given by the caller (who must), given or else the statement's own
# literal, or computed by a column's default.
_REQUIRED, _GIVEN, _DEFAULT = 0, 1, 2
Slot = tuple[int, str, Any, Callable[[Any], Any] | None]


class Prepared:
    """One statement, compiled for SQLite, run on a `sqlite3` connection."""

    __slots__ = ("_expanded", "_slots", "_sql", "_sql_for_sizes")

    def __init__(self, sql: str, slots: list[Slot], expanded: str | None) -> None:
        self._sql = sql
        self._slots = slots
        # The one parameter given as a list (`IN (...)`), whose placeholders depend on its length.
        self._expanded = expanded
        self._sql_for_sizes: dict[int, str] = {}

    @classmethod
    def compile(cls, statement: Any, dialect: Dialect) -> Prepared | None:
        """The statement prepared, or None when it needs SQLAlchemy (answers to convert, or several
        list parameters)."""
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        for column in compiled._result_columns:
            if column[3].dialect_impl(dialect).result_processor(dialect, None) is not None:
                return None
        expanding = [name for name, bind in compiled.binds.items() if bind.expanding]
        if len(expanding) > 1 or compiled.positiontup is None:
            return None
        processors = compiled._bind_processors
        defaults = {column.key: column.default for column in compiled.insert_prefetch}
        slots: list[Slot] = []
        for name in compiled.positiontup:
            if name in defaults:
                slots.append((_DEFAULT, name, defaults[name], processors.get(name)))
            else:
                bind = compiled.binds[name]
                kind = _REQUIRED if bind.required else _GIVEN
                slots.append((kind, name, bind.effective_value, processors.get(name)))
        return cls(compiled.string, slots, expanding[0] if expanding else None)

    def sql(self, params: Mapping[str, Any]) -> str:
        """The SQL for an execution with `params` (a list parameter's length sets its placeholders)."""
        return self._sql if self._expanded is None else self._sql_sized(len(params[self._expanded]))

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional values of one execution with `params`."""
        values: list[Any] = []
        for kind, name, source, process in self._slots:
            if kind == _REQUIRED:
                value = params[name]
            elif kind == _GIVEN:
                value = params.get(name, source)
            else:
                value = source.arg(None) if source.is_callable else source.arg
            if name == self._expanded:
                values.extend(process(item) if process else item for item in value)
            else:
                values.append(process(value) if process else value)
        return values

    def _sql_sized(self, size: int) -> str:
        sql = self._sql_for_sizes.get(size)
        if sql is None:
            # An empty list matches nothing, as SQLAlchemy renders it.
            placeholders = ", ".join("?" * size) if size else "SELECT 1 WHERE 1 != 1"
            sql = self._sql.replace(_EXPANDED.format(self._expanded), placeholders)
            if len(self._sql_for_sizes) < 64:
                self._sql_for_sizes[size] = sql
        return sql


class Result:
    """What the write functions read of an answer: rows as tuples, the first one, its first column,
    or how many rows a change touched."""

    __slots__ = ("_cursor", "rowcount")

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount: int = cursor.rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def scalar(self) -> Any:
        row = self._cursor.fetchone()
        return None if row is None else row[0]

    def all(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._cursor)


class PreparedConnection:
    """A SQLAlchemy `Connection` for the write functions, running the prepared statements itself."""

    def __init__(self, connection: Connection, prepared: Mapping[int, Prepared]) -> None:
        self._connection = connection
        self._prepared = prepared
        # The sqlite3 connection under SQLAlchemy's, in the transaction SQLAlchemy began.
        self.sqlite = connection.connection.driver_connection

    def execute(self, statement: Any, parameters: Any = None) -> Any:
        prepared = self._prepared.get(id(statement))
        if prepared is None:
            return self._connection.execute(statement, parameters)
        return self._run(prepared, parameters)

    def scalar(self, statement: Any, parameters: Any = None) -> Any:
        prepared = self._prepared.get(id(statement))
        if prepared is None:
            return self._connection.scalar(statement, parameters)
        return self._run(prepared, parameters).scalar()

    def scalars(self, statement: Any, parameters: Any = None) -> Iterable[Any]:
        prepared = self._prepared.get(id(statement))
        if prepared is None:
            return self._connection.scalars(statement, parameters)
        return [row[0] for row in self._run(prepared, parameters)]

    def _run(self, prepared: Prepared, parameters: Any) -> Result:
        if isinstance(parameters, list):  # one statement, many rows (no list parameter among them)
            rows = [prepared.values(one) for one in parameters]
            return Result(self.sqlite.executemany(prepared.sql(parameters[0]), rows))
        parameters = parameters or {}
        return Result(self.sqlite.execute(prepared.sql(parameters), prepared.values(parameters)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def prepare_all(statements: Iterable[Any], dialect: Dialect) -> dict[int, Prepared]:
    """The statements that can be prepared, by identity (they live as long as the index)."""
    prepared = {}
    for statement in statements:
        compiled = Prepared.compile(statement, dialect)
        if compiled is not None:
            prepared[id(statement)] = compiled
    return prepared
