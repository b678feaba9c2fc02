"""`registry gc`: remove the bytes of blobs nothing references (see registry/gc.py for when it is safe)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare, require_blob_store


def register(commands: Any) -> None:
    gc = commands.add_parser(
        "gc",
        help="delete blobs no repository or manifest references (with servers stopped or read-only)",
    )
    add_settings_arguments(gc)
    gc.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    gc.set_defaults(run=run_gc)


def run_gc(args: argparse.Namespace) -> int:
    from registry.app import Registry
    from registry.gc import collect_garbage

    settings = settings_from(args)
    require_blob_store(settings)  # with the index in PostgreSQL, a mistyped --data-dir shows only here
    prepare(settings)
    registry = Registry.build(settings)

    async def collect() -> None:
        await registry.index.open()
        try:
            collected = await collect_garbage(registry.index, registry.store, args.dry_run)
        finally:
            await registry.index.close()
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {collected.blobs} blob(s), {collected.bytes} bytes")

    asyncio.run(collect())
    return 0
