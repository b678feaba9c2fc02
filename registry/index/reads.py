"""The index's read path: fixed queries compiled once, run straight on the database driver.

Manifest and blob lookups are the registry's hottest requests, and SQLAlchemy's async layer costs
close to a millisecond of CPU per query here (a greenlet switch, a pool checkout and, for SQLite, a
hop to aiosqlite's thread and back). These reads skip it: each query is still written once with
SQLAlchemy, compiled to the dialect's SQL at first use, then executed by the driver itself.

- SQLite: a read-only connection used synchronously on the event loop. In WAL mode a reader never
  waits for a writer, and an indexed lookup takes tens of microseconds: less than the thread hop
  it replaces. Writes stay on the async engine, since they can wait on locks.
- PostgreSQL: an asyncpg pool, whose prepared statements are cached per connection.

SQLite answers are kept per process while the database has not changed (`_Unchanged`): each answer is
filed under the header of SQLite's WAL index, which every commit by any connection of any process
rewrites before it returns. Reading that header is a memory read of the `-shm` file SQLite itself maps;
a query instead releases the GIL in `sqlite3_step`, and under granian each release hands the GIL to a
server thread and waits for it back. Measured (2026-12-04, granian, wrk c=64): the same manifest GET
answered 6,700 req/s reading SQLite each time and 12,500 req/s from the kept answer, while in-process
the lookup is only 8.7 us. A GET after any acknowledged write, by any worker or any process on the same
file, sees the header change and reads the database again (tests/api/test_replicas.py,
tests/unit/test_read_cache.py). PostgreSQL has no such shared memory: every request reads the
committed state there, since any check (a generation row, LISTEN/NOTIFY) is a round trip like the
lookup itself or can lag a commit.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
from typing import Any, Protocol

from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import Select

from registry.unchanged import KeptWhileUnchanged

# A query on the index's own tables: a database that lost them (a new empty file, a dropped database)
# fails it, as it fails every request.
_CHECK = "SELECT 1 FROM repositories LIMIT 1"
# A read of any database: it opens the WAL index.
_HOLD = "SELECT count(*) FROM sqlite_master"


class Reader(Protocol):
    async def all(self, query: Select, **params: Any) -> list[tuple[Any, ...]]: ...

    async def check(self) -> None:
        """Raise unless the database answers now (readiness)."""
        ...

    def version(self) -> bytes | None:
        """A token that changes with every commit by any connection of any process, read without a
        query; None where there is none (PostgreSQL, SQLite outside WAL mode, a commit half published)."""
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


# SQLite's query answers kept per process, by default: the share of `server.read_cache`'s default.
KEPT_ROWS = 16 * 1024 * 1024


class _Unchanged:
    """Answers of one SQLite database, kept while its WAL index header stays the same.

    The header (first 96 bytes of the `-shm` file: two copies of it, the second written first) changes
    with every commit; while the two copies differ a commit is being published and nothing is kept.
    The header is read before the query, so an answer kept may be newer than the header it is filed
    under, never older: the next change empties the cache anyway. Bounded: small answers only, at most
    `MAX_ENTRIES` of them and the bytes the index was given (`server.read_cache`'s share, by default
    KEPT_ROWS) in all.
    """

    HEADER = 96
    MAX_ENTRIES = 4096
    MAX_BYTES = 64 * 1024

    def __init__(self, header: mmap.mmap, max_total: int) -> None:
        self._header = header
        self.answers: KeptWhileUnchanged[tuple[Any, ...], list[tuple[Any, ...]]] = KeptWhileUnchanged(
            self.MAX_ENTRIES, self.MAX_BYTES, max_total
        )

    @classmethod
    def of(cls, shm: str, max_total: int) -> _Unchanged | None:
        """Over the WAL index file `shm`, or None where there is none to map."""
        header = _map_header(shm, cls.HEADER)
        return None if header is None else cls(header, max_total)

    def now(self) -> bytes | None:
        """The header, or None while a commit is rewriting it."""
        header = self._header[: self.HEADER]
        half = self.HEADER // 2
        return header if header[:half] == header[half:] else None

    def keep(self, header: bytes, key: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        # What the answer holds, roughly: its text and bytes, 8 for any other value, 64 for the list
        # and for each row; so an answer of numbers counts too.
        values = sum(len(value) if isinstance(value, str | bytes) else 8 for row in rows for value in row)
        self.answers.keep(header, key, rows, values + 64 * (len(rows) + 1))


# Each WAL index file mapped in this process, by device and inode, with the descriptor it was mapped
# from. Never closed: closing any descriptor of a file drops every POSIX lock the process holds on it,
# SQLite's own included, and without its lock on the `-shm` file another process opening the database
# takes it for abandoned and empties it, under every mapping of it (a bus error; seen).
_MAPPED: dict[tuple[int, int], tuple[int, mmap.mmap | None]] = {}


def _map_header(shm: str, size: int) -> mmap.mmap | None:
    try:
        status = os.stat(shm)
    except FileNotFoundError:
        return None
    key = (status.st_dev, status.st_ino)
    if key not in _MAPPED:
        fd = os.open(shm, os.O_RDONLY)
        mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ) if os.fstat(fd).st_size >= size else None
        _MAPPED[key] = (fd, mapped)
    return _MAPPED[key][1]


class SQLiteReader:
    def __init__(self, url: str, dialect: Dialect, kept_bytes: int = KEPT_ROWS) -> None:
        path = make_url(url).database
        self._uri = f"file:{path}?mode=ro"
        self._connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA busy_timeout=5000")
        self._statements = _Statements(dialect)
        self._unchanged: _Unchanged | None = None
        # Only a database in WAL mode has a WAL index (the index sets the mode). It is mapped here only
        # once this connection has read, and so holds the `-shm` file open itself: SQLite empties that
        # file when a process opens a database no other connection holds, and a mapping of it would
        # then fault (a worker mapping the file another worker was just setting up did).
        mode = self._connection.execute("PRAGMA journal_mode").fetchone()[0]
        self._connection.execute(_HOLD).fetchall()
        if mode == "wal" and path:
            self._unchanged = _Unchanged.of(f"{path}-shm", kept_bytes)

    async def all(self, query: Select, **params: Any) -> list[tuple[Any, ...]]:
        compiled = self._statements(query)
        args = compiled.args(params)
        unchanged = self._unchanged
        header = unchanged.now() if unchanged is not None else None
        if unchanged is None or header is None:
            return self._connection.execute(compiled.sql, args).fetchall()
        key = (compiled.sql, *args)
        rows = unchanged.answers.get(header, key)
        if rows is None:
            rows = self._connection.execute(compiled.sql, args).fetchall()
            unchanged.keep(header, key, rows)
        return list(rows)

    def version(self) -> bytes | None:
        return self._unchanged.now() if self._unchanged is not None else None

    async def check(self) -> None:
        """On a fresh connection: the long-lived one keeps a deleted or replaced file open and would go
        on answering from it. Read-only, so a missing file is an error rather than a new database."""
        connection = sqlite3.connect(self._uri, uri=True, timeout=1, isolation_level=None)
        try:
            connection.execute(_CHECK).fetchall()
        finally:
            connection.close()

    async def close(self) -> None:
        self._unchanged = None  # its mapping stays: see _MAPPED
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

    def version(self) -> bytes | None:
        return None  # no shared memory to read: every request asks the database (see the module's docstring)

    async def close(self) -> None:
        await self._pool.close()


async def open_reader(url: str, dialect: Dialect, kept_bytes: int) -> Reader:
    """`kept_bytes`: how much of SQLite's query answers may be kept while the database is unchanged."""
    if dialect.name == "sqlite":
        return SQLiteReader(url, dialect, kept_bytes)
    return await PostgresReader.connect(url, dialect)
