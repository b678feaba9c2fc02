"""The settings flags: one per `Settings` field, made from the fields, so that the README's promise (a
flag for every setting, named as in YAML and the environment) holds for every setting added later."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from registry.config import ENV_PREFIX, Settings, leaves, load_settings, unknown_environment

# What every command that opens the registry's data takes; `serve` takes every setting.
DATA_SETTINGS = ("data_dir", "database_url")


def add_settings_arguments(parser: argparse.ArgumentParser, every: bool = False) -> None:
    """--config, then --data-dir and --database-url, or (`every`) a flag for each setting.

    Values stay text here: the settings read them as they read YAML and the environment, so a bad value
    is the same one-line message, naming the setting, wherever it came from.
    """
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help=f"YAML settings file ({ENV_PREFIX}CONFIG)"
    )
    for leaf in leaves():
        if not every and leaf.key not in DATA_SETTINGS:
            continue
        shown = leaf.default not in (dataclasses.MISSING, "", (), {}) and leaf.scalar
        help_text = leaf.env + (f", default {leaf.default!r}" if shown else "")
        if leaf.kind is bool:
            parser.add_argument(
                leaf.flag, dest=leaf.dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            metavar = "N" if leaf.kind in (int, float) else "VALUE" if leaf.scalar else "YAML"
            parser.add_argument(leaf.flag, dest=leaf.dest, metavar=metavar, help=help_text)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of a command's flags over the environment over the file; warns (once, here in the
    command, not in every worker) about REGISTRY_* variables that set nothing."""
    for warning in unknown_environment(os.environ):
        print(f"registry: warning: {warning}", file=sys.stderr)
    overrides = {leaf.key: getattr(args, leaf.dest, None) for leaf in leaves()}
    return load_settings(args.config, overrides)
