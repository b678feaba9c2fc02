"""The SQLite reader keeps answers only while the database is unchanged (registry/index/reads.py).

Real SQLite files in WAL mode, written by other connections and by another process: what a commit
changed is what the very next read answers. Which reads reached the database is seen through
sqlite3's own trace hook on the reader's connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.dialects import sqlite

from registry.index.reads import KEPT_ROWS, SQLiteReader, _Unchanged

TAGS = Table("tags", MetaData(), Column("name", String, primary_key=True), Column("target", Integer))
BY_NAME = select(TAGS.c.target).where(TAGS.c.name == bindparam("name"))


def _database(path: Path, journal: str = "wal") -> sqlite3.Connection:
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute(f"PRAGMA journal_mode={journal}")
    writer.execute("CREATE TABLE tags (name TEXT PRIMARY KEY, target INTEGER)")
    writer.execute("INSERT INTO tags VALUES ('latest', 1)")
    return writer


def _reader(path: Path, kept_bytes: int = KEPT_ROWS) -> tuple[SQLiteReader, list[str]]:
    reader = SQLiteReader(f"sqlite:///{path}", sqlite.dialect(), kept_bytes)
    queries: list[str] = []
    reader._connection.set_trace_callback(queries.append)
    return reader, queries


def _target(reader: SQLiteReader) -> int | None:
    rows = asyncio.run(reader.all(BY_NAME, name="latest"))
    return rows[0][0] if rows else None


def test_unchanged_database_answers_from_memory(tmp_path: Path) -> None:
    _database(tmp_path / "index.db")
    reader, queries = _reader(tmp_path / "index.db")
    assert [_target(reader) for _ in range(5)] == [1] * 5
    assert len(queries) == 1


def test_a_reader_given_no_room_keeps_nothing_and_still_has_a_version(tmp_path: Path) -> None:
    """`server.read_cache: 0`: every read asks the database; the version (for the kept pulls' layer,
    which the same setting turns off) is read all the same."""
    _database(tmp_path / "index.db")
    reader, queries = _reader(tmp_path / "index.db", kept_bytes=0)
    assert [_target(reader) for _ in range(3)] == [1] * 3
    assert len(queries) == 3
    assert reader.version() is not None


def test_a_commit_by_another_connection_is_seen_at_once(tmp_path: Path) -> None:
    writer = _database(tmp_path / "index.db")
    reader, queries = _reader(tmp_path / "index.db")
    assert _target(reader) == 1
    writer.execute("UPDATE tags SET target = 2 WHERE name = 'latest'")
    assert _target(reader) == 2
    writer.execute("DELETE FROM tags")
    assert _target(reader) is None
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL starts over: a new header all the same
    writer.execute("INSERT INTO tags VALUES ('latest', 3)")
    assert _target(reader) == 3
    assert len(queries) == 4


def test_commits_by_other_processes_are_seen_at_once(tmp_path: Path) -> None:
    """Each process opens the database while this one holds it: SQLite must see this process's lock
    on the `-shm` file, or it empties that file (a bus error under a mapping of it) and, closing,
    deletes it, so that the next process's commits would go to a new file no mapping here sees."""
    _database(tmp_path / "index.db").close()
    reader, _ = _reader(tmp_path / "index.db")
    assert _target(reader) == 1
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('UPDATE tags SET target = ? WHERE name = ?', (int(sys.argv[2]), 'latest')); c.close()"
    )
    for target in (7, 8, 9):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "index.db"), str(target)], check=True)
        assert _target(reader) == target


# SQLite's "dead man switch": every process using the WAL index holds a shared lock on this byte of the
# `-shm` file; one that finds it free takes the file for abandoned and empties it.
_DEAD_MAN_SWITCH = 128
_TRY_EXCLUSIVE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("held")
else:
    print("free")
"""


def test_mapping_the_header_keeps_sqlites_hold_on_the_wal_index(tmp_path: Path) -> None:
    _database(tmp_path / "index.db").close()
    reader, _ = _reader(tmp_path / "index.db")
    assert reader._unchanged is not None
    for _ in range(2):
        assert _target(reader) == 1
        held = subprocess.run(
            [sys.executable, "-c", _TRY_EXCLUSIVE, str(tmp_path / "index.db-shm"), str(_DEAD_MAN_SWITCH)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert held.stdout.strip() == "held"
        asyncio.run(reader.close())  # the mapping outlives the reader: see reads._MAPPED
        reader, _ = _reader(tmp_path / "index.db")


def test_without_wal_nothing_is_kept(tmp_path: Path) -> None:
    writer = _database(tmp_path / "index.db", journal="delete")
    reader, queries = _reader(tmp_path / "index.db")
    assert _target(reader) == 1
    writer.execute("UPDATE tags SET target = 2 WHERE name = 'latest'")
    assert _target(reader) == 2
    assert _target(reader) == 2
    assert len(queries) == 3


def test_large_answers_are_not_kept(tmp_path: Path) -> None:
    writer = _database(tmp_path / "index.db")
    writer.execute("INSERT INTO tags VALUES (?, 2)", ("x" * (_Unchanged.MAX_BYTES + 1),))
    reader, queries = _reader(tmp_path / "index.db")
    everything = select(TAGS.c.name, TAGS.c.target)
    for _ in range(3):
        assert len(asyncio.run(reader.all(everything))) == 2
    assert len(queries) == 3


def test_a_header_being_rewritten_keeps_nothing(tmp_path: Path) -> None:
    """SQLite writes the header's second copy, then its first: while they differ there is no state to
    file an answer under."""
    shm = tmp_path / "index.db-shm"
    shm.write_bytes(b"a" * 48 + b"a" * 48)
    unchanged = _Unchanged.of(str(shm), KEPT_ROWS)
    assert unchanged is not None
    assert unchanged.now() == b"a" * 96
    with shm.open("r+b") as file:
        file.seek(48)
        file.write(b"b" * 48)
    assert unchanged.now() is None


def test_entries_are_bounded(tmp_path: Path) -> None:
    _database(tmp_path / "index.db")
    reader, _ = _reader(tmp_path / "index.db")
    for number in range(_Unchanged.MAX_ENTRIES + 10):
        asyncio.run(reader.all(BY_NAME, name=f"tag{number}"))
    assert reader._unchanged is not None
    assert len(reader._unchanged.answers) == _Unchanged.MAX_ENTRIES


def test_the_version_moves_with_every_commit(tmp_path: Path) -> None:
    """What kept answers (registry/api/kept.py) are filed under: a new token after each commit."""
    writer = _database(tmp_path / "index.db")
    reader, queries = _reader(tmp_path / "index.db")
    seen = [reader.version()]
    for target in (2, 3):
        writer.execute("UPDATE tags SET target = ? WHERE name = 'latest'", (target,))
        seen.append(reader.version())
    assert None not in seen and len(set(seen)) == 3
    assert reader.version() == seen[-1] and not queries  # read from memory, no query
    asyncio.run(reader.close())
    assert reader.version() is None


def test_without_wal_there_is_no_version(tmp_path: Path) -> None:
    _database(tmp_path / "index.db", journal="delete")
    reader, _ = _reader(tmp_path / "index.db")
    assert reader.version() is None
