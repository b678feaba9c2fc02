"""`registry scrub`: re-hash every blob and manifest, report and quarantine what does not match its digest.

Safe beside running servers (see registry/scrub/check.py for the one race and why it is harmless).
Exits 1 when anything was wrong, so it can run from cron or a CI job; an operator mistake (no registry
at --data-dir, an index that cannot be opened) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from registry.cli.failures import database_errors, first_line, shown
from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import require_blob_store, require_index
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
        # Scrubbing an empty folder would find nothing wrong: a wrong --data-dir must say so instead.
        require_blob_store(settings)
        require_index(settings)
        return asyncio.run(_scrub(settings, args.repository, args.dry_run))
    except database_errors() as error:
        raise ValueError(
            f"cannot use the index at {shown(settings.index_url)}: {first_line(error)}"
        ) from error
    except _store_errors(settings) as error:
        raise ValueError(
            f"cannot use the S3 bucket {settings.storage.s3.bucket!r}: {first_line(error)}"
        ) from error


async def _scrub(settings: Settings, repository: str | None, dry_run: bool) -> int:
    from registry.app import Registry
    from registry.scrub import scrub

    registry = Registry.build(settings)
    try:
        await registry.index.open()
    except OSError as error:
        raise ValueError(f"cannot reach the index at {shown(settings.index_url)}: {error}") from error
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


def _store_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """What S3 raises for a wrong bucket, endpoint or credentials (boto3 is only loaded for S3)."""
    if settings.storage.kind != "s3":
        return ()
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
