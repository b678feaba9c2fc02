"""The `registry` console script: one module per command group, each adding its own subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from registry.cli import (
    build,
    cert,
    config,
    containers,
    events,
    gc,
    images,
    importing,
    inspect,
    repos,
    scrub,
    serve,
    users,
)


class _Version(argparse.Action):
    """`--version`, from the installed package's metadata, looked up only when asked: importing
    importlib.metadata costs every other command's start."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import version

        print(f"registry {version('registry')}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry", description="A private OCI container registry.")
    parser.add_argument("--version", action=_Version)
    # Also taken after the client's commands, where it overrides this one (see images.client_options).
    parser.add_argument("--root", type=Path, help="the client's local image store (REGISTRY_CLIENT_ROOT)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    gc.register(commands)
    scrub.register(commands)
    events.register(commands)
    repos.register(commands)
    images.register(commands)
    users.register(commands)
    cert.register(commands)
    config.register(commands)
    importing.register(commands)
    containers.register(commands)
    inspect.register(commands)
    build.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as error:  # OSError: files, ports, TLS material
        print(f"registry: {error}", file=sys.stderr)
        return 2
