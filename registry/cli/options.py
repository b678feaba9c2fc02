"""The settings flags: one per leaf of the settings tree, made from the tree, so that the README's promise
(a flag for every setting, named as in YAML and the environment) holds for every setting added later.
The flags of the old flat names (`--listen`) still work, hidden from the help, with a warning."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from registry.config import ENV_PREFIX, Settings, leaves, load_settings, unknown_environment
from registry.settings import distribution

# What every command that opens the registry's data takes; `serve` takes every setting.
DATA_SETTINGS = ("data_dir", "database.url")


class _OldFlag(argparse.Action):
    """A flag of an old flat setting: sets the new one and says so."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *args: Any) -> None:
        values, option = args[0], args[1]
        if self.nargs == 0:  # an old switch: --read-only, --no-access-log
            values = not option.startswith("--no-")
        new = distribution.RENAMED[self.dest]
        flag = "--" + new.replace(".", "-").replace("_", "-")
        print(f"registry: warning: {option} is now {flag}: rename it", file=sys.stderr)
        _, value = distribution.renamed(self.dest, values)
        setattr(namespace, new.replace(".", "_"), value)


def add_settings_arguments(parser: argparse.ArgumentParser, every: bool = False) -> None:
    """--config, then --data-dir and --database-url, or (`every`) a flag for each setting.

    Values stay text here: the settings read them as they read YAML and the environment, so a bad value
    is the same one-line message, naming the setting, wherever it came from.
    """
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help=f"YAML settings file ({ENV_PREFIX}CONFIG)"
    )
    for leaf in leaves():
        if (not every and leaf.key not in DATA_SETTINGS) or leaf.key == "version":
            continue  # `version` marks the file's format: no flag (and `--version` is the program's)
        shown = leaf.default not in (dataclasses.MISSING, "", (), {}) and leaf.scalar
        help_text = leaf.env + (f", default {leaf.default!r}" if shown else "")
        if leaf.kind is bool:
            parser.add_argument(
                leaf.flag, dest=leaf.dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            metavar = "N" if leaf.kind in (int, float) else "VALUE" if leaf.scalar else "YAML"
            parser.add_argument(leaf.flag, dest=leaf.dest, metavar=metavar, help=help_text)
    if every:
        by_key = {leaf.key: leaf for leaf in leaves()}
        for old, new in distribution.RENAMED.items():
            flag = "--" + old.replace("_", "-")
            if flag == by_key[new].flag:
                continue
            if by_key[new].kind is bool:
                switches = (flag, "--no-" + flag.removeprefix("--"))
                parser.add_argument(*switches, dest=old, action=_OldFlag, nargs=0, help=argparse.SUPPRESS)
            else:
                parser.add_argument(flag, dest=old, action=_OldFlag, help=argparse.SUPPRESS)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of a command's flags over the environment over the file; warns (once, here in the
    command, not in every worker) about REGISTRY_* variables that set nothing, old names and the keys of
    Distribution's configuration this registry does not read."""
    warnings = unknown_environment(os.environ)
    overrides = {leaf.key: getattr(args, leaf.dest, None) for leaf in leaves()}
    try:
        return load_settings(args.config, overrides, warnings)
    finally:  # also before the errors: a key not read here may be why a setting seems wrong
        for warning in warnings:
            print(f"registry: warning: {warning}", file=sys.stderr)
