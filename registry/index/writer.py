"""SQLite's writes: one thread, and the transactions waiting for it committed together.

SQLite takes one writer at a time, so this process's write transactions run on one thread (they queue
here instead of sleeping in SQLite's busy handler). Each used to be a transaction of its own: a hop to
the thread and back, `BEGIN IMMEDIATE` and a commit, about a third of a manifest PUT's CPU. Now the
transactions that arrive while the thread is busy run, when it is free, as one transaction (group
commit): each inside a savepoint, so one that raises is rolled back alone and its caller gets the
error, while the others commit together. Callers are answered only after that commit, so what a
request was told was written is durable and visible to every reader, as before. Order is kept: the
transactions of a group run in the order they arrived, as they would have one by one.

A lone transaction (no other waiting) runs as before, without a savepoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from registry.index.prepared import Prepared, PreparedConnection

T = TypeVar("T")
Work = Callable[..., Any]
# What a transaction gave: (True, its result) or (False, the exception it raised).
Outcome = tuple[bool, Any]


class GroupWriter:
    def __init__(self, engine: Engine, prepared: Mapping[int, Prepared] | None = None) -> None:
        self._engine = engine
        # Statements run straight on the sqlite3 connection (prepared.py).
        self._prepared = prepared or {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._waiting: list[tuple[Work, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(connection, *args)` in a committed transaction; its result, or what it raised."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._waiting.append((work, args, answer))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                works = [(work, args) for work, args, _ in group]
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._commit, works)
                except asyncio.CancelledError:  # the loop is closing: nobody may wait forever
                    for _, _, answer in [*group, *self._waiting]:
                        answer.cancel()
                    self._waiting = []
                    raise
                except Exception as error:  # the thread is gone (closed): the same for every caller
                    outcomes = [(False, error)] * len(group)
                for (_, _, answer), (ok, value) in zip(group, outcomes, strict=True):
                    if answer.done():  # its caller went away; the transaction ran all the same
                        continue
                    if ok:
                        answer.set_result(value)
                    else:
                        answer.set_exception(value)
        finally:
            self._draining = False

    def _commit(self, works: list[tuple[Work, tuple[Any, ...]]]) -> list[Outcome]:
        """On the writer thread: the group's transactions, committed once."""
        if len(works) == 1:
            work, args = works[0]
            try:
                with self._engine.begin() as connection:
                    return [(True, work(PreparedConnection(connection, self._prepared), *args))]
            except Exception as error:
                return [(False, error)]
        try:
            with self._engine.begin() as connection:
                prepared = PreparedConnection(connection, self._prepared)
                outcomes = [_in_savepoint(prepared, work, args) for work, args in works]
        except Exception as error:  # the commit failed: none of them was written
            return [(False, error)] * len(works)
        return outcomes

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._engine.dispose()


def _in_savepoint(connection: PreparedConnection, work: Work, args: tuple[Any, ...]) -> Outcome:
    """One transaction of a group, in a savepoint set on the sqlite3 connection itself (SQLAlchemy's
    nested transaction cost more than most of the statements in it). A failure to roll back to it
    escapes, and fails the whole group."""
    connection.sqlite.execute("SAVEPOINT work")
    try:
        result = work(connection, *args)
    except Exception as error:
        connection.sqlite.execute("ROLLBACK TO work")
        connection.sqlite.execute("RELEASE work")
        return False, error
    connection.sqlite.execute("RELEASE work")
    return True, result
