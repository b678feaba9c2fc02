"""`registry gc`: one online collection now, beside running servers (see registry/lifecycle/collector.py)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from typing import Any

from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare, require_blob_store
from registry.cli.retention import run_retention
from registry.settings.values import parse_duration


def register(commands: Any) -> None:
    gc = commands.add_parser(
        "gc", help="remove unreferenced blobs (and, with --untagged, manifests) while the registry serves"
    )
    add_settings_arguments(gc)
    gc.add_argument("--dry-run", action="store_true", help="report what would be removed, change nothing")
    gc.add_argument(
        "--grace",
        metavar="DURATION",
        help="spare what was pushed or mounted within this long, and keep removed blobs' bytes this long,"
        " e.g. 30m, 1h, 2d, 1h30m, 0s (default: the gc.grace setting, 1h)",
    )
    gc.add_argument(
        "--untagged",
        action="store_true",
        default=None,
        help="also remove untagged manifests no index references (default: the gc.untagged setting)",
    )
    gc.set_defaults(run=run_gc)


def parse_grace(text: str) -> timedelta:
    """`--grace`, read as any duration setting is (`1h30m`, `2d`, `0s`, seconds); a ValueError naming the
    option otherwise, shown in one line."""
    seconds = parse_duration(text)
    if seconds is None:
        raise ValueError(f"--grace {text!r} is not a duration such as 30m, 1h, 2d or 0s")
    return timedelta(seconds=seconds)


def run_gc(args: argparse.Namespace) -> int:
    from registry.app import Registry
    from registry.lifecycle.collector import Collector

    grace = parse_grace(args.grace) if args.grace is not None else None
    settings = settings_from(args)
    require_blob_store(settings)  # with the index in PostgreSQL, a mistyped --data-dir shows only here
    prepare(settings)
    registry = Registry.build(settings)
    collector = Collector(
        registry.index,
        registry.store,
        grace if grace is not None else timedelta(seconds=settings.gc.grace),
        settings.gc.untagged if args.untagged is None else args.untagged,
        purge_uploads=registry.blobs.purge_expired,
        events=registry.events,
    )

    async def collect() -> None:
        await registry.index.open()
        try:
            await run_retention(registry.index, settings, args.dry_run, registry.events)
            collected = await collector.run(args.dry_run)
        finally:
            await registry.index.close()
        print(collected if collected is not None else "another collection is running: nothing done")

    asyncio.run(collect())
    return 0
