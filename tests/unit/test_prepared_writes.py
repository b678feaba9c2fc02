"""SQLite writes run straight on the sqlite3 connection (registry/index/prepared.py) store and answer
exactly what SQLAlchemy's own execution of the same statements does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, select, update
from sqlalchemy.dialects import sqlite

from registry.index.models import Base, Blob, Upload
from registry.index.prepared import Prepared, PreparedConnection, prepare_all
from registry.index.sql import _WriteStatements


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'index.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_every_write_statement_of_the_index_is_prepared() -> None:
    writes = _WriteStatements(sqlite.insert)
    statements = vars(writes)
    prepared = prepare_all(statements.values(), sqlite.dialect())
    assert {name for name, statement in statements.items() if id(statement) not in prepared} == set()


def test_a_statement_whose_answers_need_converting_is_left_to_sqlalchemy() -> None:
    times = select(Blob.created_at).where(Blob.digest == bindparam("digest"))
    assert Prepared.compile(times, sqlite.dialect()) is None
    assert Prepared.compile(select(Blob.size), sqlite.dialect()) is not None


def test_prepared_writes_store_what_sqlalchemy_stores(engine) -> None:  # type: ignore[no-untyped-def]
    writes = _WriteStatements(sqlite.insert)
    prepared = prepare_all(vars(writes).values(), engine.dialect)
    digests = [f"sha256:{n:064x}" for n in range(4)]
    with engine.begin() as connection:
        fast = PreparedConnection(connection, prepared)
        # Python-side defaults (created_at) filled in; many rows in one call.
        fast.execute(writes.add_blob, [{"digest": digests[0], "size": 1}, {"digest": digests[1], "size": 2}])
        connection.execute(writes.add_blob, {"digest": digests[2], "size": 3})
        assert fast.scalar(writes.hold_blob, {"digest": digests[1]}) == 2
        assert fast.scalar(writes.hold_blob, {"digest": digests[3]}) is None
        repo = fast.scalar(writes.add_repository, {"name": "a/b"})
        assert fast.scalar(writes.repository_id, {"name": "a/b"}) == repo
        now = datetime.now(UTC)
        for digest in digests[:3]:
            fast.execute(writes.link_blob, {"repository_id": repo, "digest": digest, "now": now})
        # A list parameter (IN), of every length, an empty one included.
        for wanted in ([], digests[:1], digests):
            found = fast.scalars(writes.linked_blobs, {"repository_id": repo, "digests": wanted})
            assert sorted(found) == sorted(set(wanted) - {digests[3]})
        # Row counts, and the statement's own literals (writer and lease set to NULL).
        fast.execute(writes.add_upload, {"id": "u1", "repository": "a/b"})
        claim = {"upload": "u1", "in_repository": "a/b", "claimant": "me", "now": now, "until": now}
        assert fast.scalar(writes.claim_upload, claim) == 1
        assert fast.execute(writes.upload_holder, claim).first() == ("me",)
        released = fast.execute(writes.release_upload, {"upload": "u1", "claimant": "me", "now": now})
        assert released.rowcount == 1
        with pytest.raises(KeyError):
            fast.execute(writes.delete_upload, {})
    with engine.connect() as connection:
        blobs = connection.execute(select(Blob.digest, Blob.size, Blob.created_at).order_by(Blob.size)).all()
        assert [(digest, size) for digest, size, _ in blobs] == list(zip(digests[:3], [1, 2, 3], strict=True))
        # The prepared rows' times read back as SQLAlchemy's own do.
        assert all(isinstance(created, datetime) for _, _, created in blobs)
        upload = connection.execute(select(Upload.writer, Upload.lease_until, Upload.generation)).one()
        assert tuple(upload) == (None, None, 1)
        assert connection.execute(update(Upload).values(writer="x")).rowcount == 1
