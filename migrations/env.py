"""Alembic environment: runs the migrations on the index's own async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import make_url, text
from sqlalchemy.engine import Connection

from registry.index.models import Base
from registry.index.sql import create_engine

config = context.config
target_metadata = Base.metadata
# The PostgreSQL advisory lock migrations take (any constant: it only has to be the same everywhere).
MIGRATION_LOCK = 0x7265676973747279  # "registry"


def _run(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables when a migration needs it.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    """Servers sharing a data folder migrate one at a time: an exclusive lock on a file beside the index
    (SQLite's own locking does not cover CREATE TABLE racing CREATE TABLE)."""
    database = make_url(url).database
    if make_url(url).get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


async def _run_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    with _sqlite_lock(url):
        engine = create_engine(url)
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together on a new database would each create the same tables (and
                # all but one fail): the first to take the lock migrates, the others then find the
                # schema current. A transaction lock: it goes with the migrations' commit, or a crash.
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await connection.run_sync(_run)
            await connection.commit()
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
