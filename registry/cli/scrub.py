"""`registry scrub`: re-hash every blob and manifest, report and quarantine what does not match its digest.

Safe beside running servers (see registry/scrub/check.py for the one race and why it is harmless).
Exits 1 when anything was wrong, so it can run from cron or a CI job; an operator mistake (no registry
at --data-dir, an index that cannot be opened) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from registry.cli.serve import add_settings_arguments, settings_from
from registry.config import Settings


def register(commands: Any) -> None:
    scrub = commands.add_parser(
        "scrub", help="re-hash every blob and manifest; quarantine what does not match its digest"
    )
    add_settings_arguments(scrub)
    scrub.add_argument("--repository", metavar="NAME", help="only the blobs linked to and manifests in NAME")
    scrub.add_argument("--dry-run", action="store_true", help="report problems, change nothing")
    scrub.set_defaults(run=run_scrub)


def run_scrub(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        _require_registry(settings)
        return asyncio.run(_scrub(settings, args.repository, args.dry_run))
    except _database_errors() as error:
        raise ValueError(
            f"cannot use the index at {_shown(settings.index_url)}: {_first_line(error)}"
        ) from error
    except _store_errors(settings) as error:
        raise ValueError(f"cannot use the S3 bucket {settings.s3_bucket!r}: {_first_line(error)}") from error


async def _scrub(settings: Settings, repository: str | None, dry_run: bool) -> int:
    from registry.app import Registry
    from registry.scrub import scrub

    registry = Registry.build(settings)
    try:
        await registry.index.open()
    except OSError as error:
        raise ValueError(f"cannot reach the index at {_shown(settings.index_url)}: {error}") from error
    try:
        scrubbed = await scrub(
            registry.index,
            registry.store,
            repository=repository,
            dry_run=dry_run,
            report=lambda finding: print(finding, flush=True),
        )
    finally:
        await registry.index.close()
    print(scrubbed)
    return 1 if scrubbed.findings else 0


def _require_registry(settings: Settings) -> None:
    """Scrubbing an empty folder would find nothing wrong: a wrong --data-dir must say so instead."""
    from sqlalchemy import make_url

    if settings.storage == "filesystem" and not settings.blob_root.is_dir():
        raise ValueError(f"no blob store at {settings.blob_root} (is --data-dir right?)")
    url = make_url(settings.index_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise ValueError(f"no index at {url.database} (is --data-dir or --database-url right?)")


def _database_errors() -> tuple[type[Exception], ...]:
    """What a wrong URL, wrong credentials, a missing database or schema raise, from either driver."""
    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def _store_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """What S3 raises for a wrong bucket, endpoint or credentials (boto3 is only loaded for S3)."""
    if settings.storage != "s3":
        return ()
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _first_line(error: Exception) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def _shown(url: str) -> str:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)
