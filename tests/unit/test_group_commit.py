"""SQLite's group commit (registry/index/writer.py) on a real database file.

The first transaction holds the writer thread (it waits on an event) until the others are queued
behind it, so which transactions share a commit is decided, not timed.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine

from registry.index.writer import GroupWriter


class Refused(Exception):
    pass


def _engine(path: Path) -> tuple[Engine, list[str]]:
    engine = create_engine(f"sqlite:///{path}")
    begun: list[str] = []

    @event.listens_for(engine, "connect")
    def _manual(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")  # as the index's own engine

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        begun.append("BEGIN")
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE rows (name TEXT PRIMARY KEY)"))
    begun.clear()
    return engine, begun


def _insert(connection: Connection, name: str) -> int:
    connection.execute(text("INSERT INTO rows VALUES (:name)"), {"name": name})
    return connection.execute(text("SELECT count(*) FROM rows")).scalar_one()


def _insert_then_refuse(connection: Connection, name: str) -> None:
    _insert(connection, name)
    raise Refused(name)


def _rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT name FROM rows ORDER BY name"))]


async def _behind_a_held_writer(writer: GroupWriter, *works: tuple[Any, ...]) -> list[Any]:
    """Run `works` concurrently, all queued while a first transaction holds the writer thread."""
    held = threading.Event()

    def hold(connection: Connection) -> int:
        held.wait(10)
        return _insert(connection, "first")

    first = asyncio.create_task(writer.run(hold))
    await asyncio.sleep(0)  # the first is on the thread now; the rest queue behind it
    rest = [asyncio.create_task(writer.run(*work)) for work in works]
    await asyncio.sleep(0)
    held.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_waiting_transactions_commit_together_each_with_its_answer(tmp_path: Path) -> None:
    engine, begun = _engine(tmp_path / "index.db")
    writer = GroupWriter(engine)
    answers = asyncio.run(_behind_a_held_writer(writer, (_insert, "a"), (_insert, "b"), (_insert, "c")))
    assert answers == [1, 2, 3, 4]  # in arrival order, each seeing those before it
    assert len(begun) == 2  # the first alone, then one transaction for the three
    assert _rows(engine) == ["a", "b", "c", "first"]
    writer.close()


def test_one_that_raises_is_rolled_back_alone(tmp_path: Path) -> None:
    engine, begun = _engine(tmp_path / "index.db")
    writer = GroupWriter(engine)
    answers = asyncio.run(
        _behind_a_held_writer(writer, (_insert, "a"), (_insert_then_refuse, "b"), (_insert, "c"))
    )
    assert answers[:2] == [1, 2] and isinstance(answers[2], Refused) and answers[3] == 3
    assert len(begun) == 2
    assert _rows(engine) == ["a", "c", "first"]
    writer.close()


def test_a_failed_commit_fails_the_whole_group(tmp_path: Path) -> None:
    """A constraint checked at commit (a deferred foreign key) fails the commit itself: nothing of the
    group is written and every caller in it is told."""
    engine, _ = _engine(tmp_path / "index.db")
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE refs (name TEXT REFERENCES rows(name) DEFERRABLE INITIALLY DEFERRED)")
        )

    def dangling(connection: Connection) -> None:
        connection.execute(text("INSERT INTO refs VALUES ('nowhere')"))

    writer = GroupWriter(engine)
    answers = asyncio.run(_behind_a_held_writer(writer, (_insert, "a"), (dangling,)))
    assert answers[0] == 1
    assert all(isinstance(answer, Exception) for answer in answers[1:])
    assert _rows(engine) == ["first"]
    writer.close()


def test_a_caller_that_went_away_still_has_its_transaction_committed(tmp_path: Path) -> None:
    """As with a transaction of its own: a request cancelled (its client gone) after handing over its
    write does not undo it, and the others in its group are answered as usual."""
    engine, _ = _engine(tmp_path / "index.db")
    writer = GroupWriter(engine)
    held = threading.Event()

    def hold(connection: Connection) -> int:
        held.wait(10)
        return _insert(connection, "first")

    async def cancel_one() -> list[Any]:
        first = asyncio.create_task(writer.run(hold))
        await asyncio.sleep(0)
        gone = asyncio.create_task(writer.run(_insert, "kept"))
        other = asyncio.create_task(writer.run(_insert, "other"))
        await asyncio.sleep(0)
        gone.cancel()
        held.set()
        return await asyncio.gather(first, other, gone, return_exceptions=True)

    answers = asyncio.run(cancel_one())
    assert answers[:2] == [1, 3] and isinstance(answers[2], asyncio.CancelledError)
    assert _rows(engine) == ["first", "kept", "other"]
    writer.close()
