"""What a container runs: the image config's Entrypoint, Cmd, Env, WorkingDir and User, with Docker's
rules for overriding them from the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Process:
    args: list[str]
    env: list[str]
    workdir: str
    user: str  # name or uid, optionally :group or :gid; "" is root


def merge_env(
    base: Sequence[str], overrides: Sequence[str], host: Mapping[str, str] = os.environ
) -> list[str]:
    """`base` with `overrides` applied: `K=V` sets K, a bare `K` copies the host's K (if it has one)."""
    merged = {item.partition("=")[0]: item.partition("=")[2] for item in base}
    for item in overrides:
        key, equals, value = item.partition("=")
        if not key:
            raise ValueError(f"invalid environment variable {item!r}")
        if equals:
            merged[key] = value
        elif key in host:
            merged[key] = host[key]
    return [f"{key}={value}" for key, value in merged.items()]


def process(
    image_config: Mapping[str, Any],
    args: Sequence[str] = (),
    entrypoint: str | None = None,
    env: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
) -> Process:
    """The process for `run`. As with Docker, `--entrypoint` also drops the image's Cmd (an empty
    entrypoint drops the image's entrypoint), and arguments replace Cmd."""
    config = image_config.get("config") or {}
    if entrypoint is not None:
        command = [entrypoint] if entrypoint else []
        default_args: list[str] = []
    else:
        command = list(config.get("Entrypoint") or [])
        default_args = list(config.get("Cmd") or [])
    command += list(args) or default_args
    if not command:
        raise ValueError("no command specified: the image has no Entrypoint or Cmd and none was given")
    environment = merge_env(config.get("Env") or [], env)
    if not any(item.startswith("PATH=") for item in environment):
        environment.insert(0, DEFAULT_PATH)
    directory = workdir or config.get("WorkingDir") or "/"
    if not directory.startswith("/"):
        raise ValueError(f"the working directory {directory!r} is not an absolute path")
    return Process(command, environment, directory, user if user is not None else config.get("User") or "")
