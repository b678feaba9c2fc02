"""`registry config check FILE` (every problem of a settings file, one line each) and `registry config
reference` (what every setting means, generated from the settings tree)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from registry.config import Settings, SettingsError, load_settings
from registry.settings.reference import render


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="check a settings file; print the settings reference")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="name every problem of a settings file (a Distribution config.yml too)"
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(run=run_check)
    reference = actions.add_parser("reference", help="print the reference of every setting (Markdown)")
    reference.set_defaults(run=run_reference)


def run_check(args: argparse.Namespace) -> int:
    """The file alone (no environment, no flags): exit 1 with one line per error, warnings beside."""
    warnings: list[str] = []
    try:
        load_settings(args.file, warnings=warnings, environ={})
    except SettingsError as error:
        problems = error.problems
    except ValueError as error:  # the file cannot be read or parsed
        problems = [str(error)]
    else:
        problems = []
    for warning in warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(f"{args.file}: error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: ok" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 1 if problems else 0


def run_reference(_args: argparse.Namespace) -> int:
    sys.stdout.write(render(Settings))
    return 0
