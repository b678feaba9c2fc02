"""Waiting for a PostgreSQL index at start-up: in a deployment the database often starts beside the
registry, and a server that exits at once on a refused connection only turns that into a restart loop.

Only "not up yet" is waited for (a refused or unreachable connection, a server still starting); a
missing database or refused credentials will not change by waiting, so they fail at once, saying what
to do.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import asyncpg
from sqlalchemy import make_url

log = logging.getLogger("registry")

RETRY_INTERVAL = 1.0
CONNECT_TIMEOUT = 5.0


def wait_for_database(url: str, wait: float) -> None:
    """Return once the PostgreSQL server at `url` takes a connection; ValueError, for the operator, when
    it does not within `wait` seconds or answers something waiting cannot fix."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    deadline = time.monotonic() + wait
    for attempt in itertools.count(1):
        try:
            asyncio.run(_connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False)))
            return
        except asyncpg.InvalidCatalogNameError:
            name = parsed.database
            raise ValueError(
                f"database {name!r} does not exist on {where}: create it (CREATE DATABASE {name}), "
                "or fix database_url"
            ) from None
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as error:
            raise ValueError(
                f"the database at {where} refused the login ({error}): "
                "check the user and password in database_url"
            ) from None
        except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as error:
            reason = str(error) or type(error).__name__
            if time.monotonic() + RETRY_INTERVAL > deadline:
                raise ValueError(
                    f"the database at {where} did not answer within {wait:g} s ({reason}): start it, "
                    "check database_url, or wait longer with database_wait"
                ) from None
            log.warning("waiting for the database at %s (try %d): %s", where, attempt, reason)
            time.sleep(RETRY_INTERVAL)


async def _connect(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    await connection.close()
