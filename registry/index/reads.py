"""The index's read path: fixed queries compiled once, run straight on the database driver.

Manifest and blob lookups are the registry's hottest requests, and SQLAlchemy's async layer costs
close to a millisecond of CPU per query here (a greenlet switch, a pool checkout and, for SQLite, a
hop to aiosqlite's thread and back). These reads skip it: each query is still written once with
SQLAlchemy, compiled to the dialect's SQL at first use, then executed by the driver itself.

- SQLite: a read-only connection used synchronously on the event loop. In WAL mode a reader never
  waits for a writer, and an indexed lookup takes tens of microseconds: less than the thread hop
  it replaces. Writes stay on the async engine, since they can wait on locks.
- PostgreSQL: an asyncpg pool, whose prepared statements are cached per connection.

No process keeps answers of its own, not even for what a digest names, which never changes: every
request reads the committed state, so a tag moved, or a manifest or blob deleted (by DELETE or GC) by
any worker or replica, is what the very next request anywhere sees (tests/api/test_replicas.py).
Measured (2026-12-04, SQLite, one process): a manifest lookup by tag or digest takes 8.7 us of CPU, a
blob's size 6.8 us, out of 75-100 us for the whole request through the ASGI stack. A per-process cache
of digests would still need a check that nothing was deleted since: `PRAGMA data_version` costs 3.1 us
and changes with every write anywhere (a push invalidates it all), and on PostgreSQL any check, such as
a generation counter row, is a round trip like the lookup itself. At most 6 us of 75, bought with a
class of staleness bugs: not worth it. The lever is the layers around the lookup, not the lookup.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import Select

# A query on the index's own tables: a database that lost them (a new empty file, a dropped database)
# fails it, as it fails every request.
_CHECK = "SELECT 1 FROM repositories LIMIT 1"


class Reader(Protocol):
    async def all(self, query: Select, **params: Any) -> list[tuple[Any, ...]]: ...

    async def check(self) -> None:
        """Raise unless the database answers now (readiness)."""
        ...

    async def close(self) -> None: ...


class _Compiled:
    __slots__ = ("defaults", "names", "sql")

    def __init__(self, query: Select, dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or [])
        # Parameters the dialect adds itself (SQLite's OFFSET 0 after a LIMIT) keep their values.
        self.defaults = compiled.params

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.defaults[name] for name in self.names]


class _Statements:
    """Each query compiled once per process for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[int, _Compiled] = {}

    def __call__(self, query: Select) -> _Compiled:
        compiled = self._compiled.get(id(query))
        if compiled is None:
            compiled = self._compiled[id(query)] = _Compiled(query, self._dialect)
        return compiled


class SQLiteReader:
    def __init__(self, url: str, dialect: Dialect) -> None:
        path = make_url(url).database
        self._uri = f"file:{path}?mode=ro"
        self._connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA busy_timeout=5000")
        self._statements = _Statements(dialect)

    async def all(self, query: Select, **params: Any) -> list[tuple[Any, ...]]:
        compiled = self._statements(query)
        return self._connection.execute(compiled.sql, compiled.args(params)).fetchall()

    async def check(self) -> None:
        """On a fresh connection: the long-lived one keeps a deleted or replaced file open and would go
        on answering from it. Read-only, so a missing file is an error rather than a new database."""
        connection = sqlite3.connect(self._uri, uri=True, timeout=1, isolation_level=None)
        try:
            connection.execute(_CHECK).fetchall()
        finally:
            connection.close()

    async def close(self) -> None:
        self._connection.close()


class PostgresReader:
    def __init__(self, pool: Any, dialect: Dialect) -> None:
        self._pool = pool
        self._statements = _Statements(dialect)

    @classmethod
    async def connect(cls, url: str, dialect: Dialect) -> PostgresReader:
        import asyncpg  # only PostgreSQL deployments load the driver

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(await asyncpg.create_pool(dsn, min_size=1, max_size=8), dialect)

    async def all(self, query: Select, **params: Any) -> list[tuple[Any, ...]]:
        compiled = self._statements(query)
        return await self._pool.fetch(compiled.sql, *compiled.args(params))

    async def check(self) -> None:
        await self._pool.fetch(_CHECK)

    async def close(self) -> None:
        await self._pool.close()


async def open_reader(url: str, dialect: Dialect) -> Reader:
    if dialect.name == "sqlite":
        return SQLiteReader(url, dialect)
    return await PostgresReader.connect(url, dialect)
