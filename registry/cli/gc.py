"""`registry gc`: remove the bytes of blobs nothing references (see registry/gc.py for when it is safe)."""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import timedelta
from typing import Any

from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare, require_blob_store
from registry.cli.retention import run_retention

_DURATION = re.compile(r"(?:[0-9]{1,9}[smhd])+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: Any) -> None:
    gc = commands.add_parser(
        "gc",
        help="delete blobs no manifest references (with servers stopped or read-only)",
    )
    add_settings_arguments(gc)
    gc.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    gc.add_argument(
        "--grace",
        metavar="DURATION",
        default="1h",
        help="spare blobs pushed or mounted within this long, e.g. 30m, 1h, 2d, 1h30m, 0s (default: 1h)",
    )
    gc.set_defaults(run=run_gc)


def parse_duration(text: str) -> timedelta:
    """`1h30m`-style durations (s, m, h, d); a ValueError naming the option otherwise, shown in one line."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"--grace {text!r} is not a duration such as 30m, 1h, 2d or 0s")
    pieces = re.findall(r"([0-9]+)([smhd])", text)
    return timedelta(seconds=sum(int(number) * _UNIT_SECONDS[unit] for number, unit in pieces))


def run_gc(args: argparse.Namespace) -> int:
    from registry.app import Registry
    from registry.gc import collect_garbage

    grace = parse_duration(args.grace)
    settings = settings_from(args)
    require_blob_store(settings)  # with the index in PostgreSQL, a mistyped --data-dir shows only here
    prepare(settings)
    registry = Registry.build(settings)

    async def collect() -> None:
        await registry.index.open()
        try:
            await run_retention(registry.index, settings, args.dry_run)
            collected = await collect_garbage(registry.index, registry.store, grace, args.dry_run)
        finally:
            await registry.index.close()
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {collected.blobs} blob(s), {collected.bytes} bytes")

    asyncio.run(collect())
    return 0
