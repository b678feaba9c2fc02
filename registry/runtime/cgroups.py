"""Memory and process-count limits through cgroups, v1 (one hierarchy per controller) or v2 (unified).

    v1: /sys/fs/cgroup/memory/registry/<id>/   memory.limit_in_bytes (+ memsw when swap is accounted)
        /sys/fs/cgroup/pids/registry/<id>/     pids.max
    v2: /sys/fs/cgroup/registry/<id>/          memory.max, memory.swap.max, pids.max

A cgroup is made only for a container that asks for a limit. The container's first process joins it
before it creates its namespaces, so everything in the container (and every `exec`) is counted.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "registry"


class CgroupsUnavailable(OSError):
    pass


@dataclass(frozen=True)
class ResourceLimits:
    memory: int | None = None  # bytes
    pids: int | None = None

    def __bool__(self) -> bool:
        return self.memory is not None or self.pids is not None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def create(name: str, limits: ResourceLimits) -> list[str]:
    """Make the container's cgroups with `limits` set; returns their directories (to join and remove)."""
    try:
        return _create_v2(name, limits) if unified() else _create_v1(name, limits)
    except OSError as error:
        raise CgroupsUnavailable(error.errno, f"cannot set limits through cgroups: {error}") from error


def _create_v1(name: str, limits: ResourceLimits) -> list[str]:
    wanted = {"memory": limits.memory is not None, "pids": limits.pids is not None}
    made = []
    for controller, needed in wanted.items():
        if not needed:
            continue
        hierarchy = CGROUP_ROOT / controller
        if not (hierarchy / "cgroup.procs").is_file():
            raise FileNotFoundError(f"the {controller} cgroup controller is not mounted at {hierarchy}")
        directory = hierarchy / PARENT / name
        directory.mkdir(parents=True, exist_ok=True)
        made.append(str(directory))
        if controller == "memory":
            _write(directory / "memory.limit_in_bytes", str(limits.memory))
            if (directory / "memory.memsw.limit_in_bytes").exists():
                _write(directory / "memory.memsw.limit_in_bytes", str(limits.memory))
        else:
            _write(directory / "pids.max", str(limits.pids))
    return made


def _create_v2(name: str, limits: ResourceLimits) -> list[str]:
    parent = CGROUP_ROOT / PARENT
    parent.mkdir(exist_ok=True)
    controllers = " ".join(
        f"+{c}" for c, wanted in (("memory", limits.memory), ("pids", limits.pids)) if wanted
    )
    _write(CGROUP_ROOT / "cgroup.subtree_control", controllers)
    _write(parent / "cgroup.subtree_control", controllers)
    directory = parent / name
    directory.mkdir(exist_ok=True)
    if limits.memory is not None:
        _write(directory / "memory.max", str(limits.memory))
        if (directory / "memory.swap.max").exists():
            _write(directory / "memory.swap.max", "0")
    if limits.pids is not None:
        _write(directory / "pids.max", str(limits.pids))
    return [str(directory)]


def join(directories: list[str], pid: int | None = None) -> None:
    for directory in directories:
        _write(Path(directory) / "cgroup.procs", str(pid or os.getpid()))


def remove(directories: list[str]) -> None:
    """Remove the cgroups once their processes are gone (a busy or missing one is left alone)."""
    for directory in directories:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
