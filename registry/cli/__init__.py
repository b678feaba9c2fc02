"""The `registry` console script: one module per command group, each adding its own subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from registry.cli import cert, containers, gc, images, scrub, serve, users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry", description="A private OCI container registry.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    gc.register(commands)
    scrub.register(commands)
    images.register(commands)
    users.register(commands)
    cert.register(commands)
    containers.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as error:  # OSError: files, ports, TLS material
        print(f"registry: {error}", file=sys.stderr)
        return 2
