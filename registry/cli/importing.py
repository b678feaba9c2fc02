"""`registry import-distribution PATH`: take a Distribution filesystem storage folder (its
rootdirectory, holding docker/registry/v2) into this registry, whichever store this one uses."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare


def register(commands: Any) -> None:
    command = commands.add_parser(
        "import-distribution",
        help="import a Distribution (registry:2) filesystem storage folder: repositories, tags, blobs",
    )
    command.add_argument(
        "path", type=Path, metavar="PATH", help="Distribution's rootdirectory (holding docker/registry/v2)"
    )
    add_settings_arguments(command, every=True)
    command.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from registry.app import Registry
    from registry.importer.layout import v2_root
    from registry.importer.run import import_distribution

    root = v2_root(args.path)
    if root is None:
        raise ValueError(
            f"{args.path} holds no Distribution layout (docker/registry/v2/repositories): name the "
            "folder of Distribution's storage.filesystem.rootdirectory"
        )
    settings = settings_from(args)
    prepare(settings, create=True)
    registry = Registry.build(settings)

    async def work() -> Any:
        await registry.index.open()
        try:
            return await import_distribution(registry, root, print)
        finally:
            await registry.index.close()

    done = asyncio.run(work())
    for problem in done.problems:
        print(f"registry: warning: {problem}", file=sys.stderr)
    print(done.summary())
    return 1 if done.problems else 0
