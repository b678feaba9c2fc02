"""Turning what the index's drivers raise into one line for the operator, naming the index."""

from __future__ import annotations

import sqlite3

from registry.config import Settings


def database_errors() -> tuple[type[Exception], ...]:
    """What a wrong URL, wrong credentials, a missing database or schema raise, from either driver."""
    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def index_failure(settings: Settings, error: Exception) -> ValueError:
    """The one line for a failed index: which index, what its driver said, and, where the cause is plain
    (SQLite on a read-only disk), what to do."""
    from sqlalchemy import make_url

    url = make_url(settings.index_url)
    if isinstance(error, OSError) and error.strerror:  # the migration lock's file, beside the index
        reason = error.strerror
    else:
        reason = first_line(getattr(error, "orig", None) or error)
    if url.get_backend_name() == "sqlite":
        if any(sign in reason.lower() for sign in ("readonly", "read-only", "unable to open")):
            return ValueError(
                f"cannot write the index at {url.database}: {reason}: is its disk read-only? "
                f"check the mount and permissions of {settings.data_dir}"
            )
        return ValueError(f"cannot use the index at {url.database}: {reason}")
    return ValueError(f"cannot use the index at {shown(settings.index_url)}: {reason}")


def first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def shown(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)
