"""Containers' records: one directory per container holding a JSON document and its writable layer.

    <root>/                     REGISTRY_CONTAINERS_ROOT, else $XDG_DATA_HOME/registry/containers
      lock                      flock held while a container is created (names are unique)
      rootfs/<chain id>/        unpacked images (registry.unpack.RootfsCache), shared by containers
      <id>/                     64 hex digits
        container.json          this module's `Container`, replaced atomically on every change
        output.log              a detached container's stdout and stderr (registry.runtime.logfile)
        stdin                   a FIFO: a detached `-i` container's input, written by `attach`
        stopped                 present while it was stopped on purpose (no restart by policy)
        upper/ work/            the overlayfs writable layer and its scratch folder
        rootfs/                 where the root is mounted (overlay), or the root itself (copy)
        etc/                    hosts, hostname and resolv.conf, bind-mounted into the container

The record is the truth about what was asked; whether a container still runs is checked against the
kernel (its PID and that process's start time), so a record left behind by a crashed monitor reads as
exited rather than running forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ID_PATTERN = re.compile(r"[0-9a-f]{64}")
LOG = "output.log"
# Beside the record while the container is stopped on purpose (its restart policy is then not applied).
STOPPED_ON_PURPOSE = "stopped"
# A detached container started with -i reads this FIFO, which `attach` writes to.
STDIN = "stdin"
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


class ContainerError(Exception):
    """A request that does not fit the container's state (removing one that runs, ...)."""


class ContainerNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def default_root() -> Path:
    if root := os.environ.get("REGISTRY_CONTAINERS_ROOT"):
        return Path(root)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "registry" / "containers"


@dataclass
class Container:
    id: str
    name: str
    image: str  # as the user named it
    image_id: str  # the image's config digest
    args: list[str]  # the process: entrypoint and command
    env: list[str]
    workdir: str
    user: str
    hostname: str
    network: str  # "none" or "host"
    tty: bool
    interactive: bool
    volumes: list[str]  # host:container[:ro]
    lower: str  # the unpacked image it runs on
    storage: str  # "overlay" or "copy"
    userns: bool  # runs in a user namespace of its own (when not started by root)
    auto_remove: bool
    detached: bool
    init: bool  # a tiny init is PID 1 (reaping zombies), the process PID 2
    cgroups: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    status: str = "created"  # created, running, exited
    pid: int | None = None  # host PID of the container's PID 1
    pid_start: int | None = None  # that process's start time, to tell a reused PID apart
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    # Kept to start it again as it was created: its limits, restart policy and published ports.
    memory: int | None = None
    pids: int | None = None
    restart: str = "no"  # registry.runtime.restart.RestartPolicy
    restart_count: int = 0
    ports: list[str] = field(default_factory=list)  # [IP:]HOSTPORT:CONTAINERPORT[/tcp]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.status == "running" and self.pid is not None and process_start(self.pid) == self.pid_start


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if fields[0] != "Z" else None


def disk_usage(path: Path) -> int:
    """Bytes of disk the files under `path` take (blocks, so sparse files count what they use)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def writable_size(store: ContainerStore, container: Container) -> int:
    """Bytes of a container's writable layer: overlayfs's upper folder, or the whole copied root."""
    layer = "upper" if container.storage == "overlay" else "rootfs"
    return disk_usage(store.directory(container) / layer)


class ContainerStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def directory(self, container: Container | str) -> Path:
        return self.root / (container if isinstance(container, str) else container.id)

    def make_root(self) -> None:
        # Private, as the unpacked images in it hold set-user-ID files of any owner.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.make_root()
        with open(self.root / "lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def create(self, container: Container) -> Path:
        """Record a new container, refusing a name another container already has."""
        if not NAME_PATTERN.fullmatch(container.name):
            raise ValueError(f"invalid container name {container.name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        with self.lock():
            for other in self.all():
                if other.name == container.name:
                    raise ValueError(
                        f"the name {container.name!r} is already used by container {other.short_id}"
                    )
            directory = self.directory(container)
            directory.mkdir(mode=0o700)
            self.save(container)
        return directory

    def save(self, container: Container) -> None:
        directory = self.directory(container)
        handle, staging = tempfile.mkstemp(dir=directory, prefix=".container.json.")
        with os.fdopen(handle, "w") as stream:
            json.dump(dataclasses.asdict(container), stream, indent=1)
        os.replace(staging, directory / "container.json")

    def load(self, container_id: str) -> Container:
        try:
            document = json.loads((self.directory(container_id) / "container.json").read_text())
        except FileNotFoundError:
            raise ContainerNotFound(f"No such container: {container_id}") from None
        return Container(**document)

    def all(self) -> list[Container]:
        """Every container, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if ID_PATTERN.fullmatch(entry.name):
                with contextlib.suppress(ContainerNotFound):  # being created or removed right now
                    found.append(self.load(entry.name))
        return sorted(found, key=lambda c: c.created, reverse=True)

    def find(self, reference: str) -> Container:
        """A container by name, full ID or unique ID prefix, as Docker accepts them."""
        containers = self.all()
        for container in containers:
            if reference in (container.id, container.name):
                return container
        matches = [c for c in containers if reference and c.id.startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ContainerNotFound(f"container ID prefix {reference!r} is ambiguous")
        raise ContainerNotFound(f"No such container: {reference}")

    def remove(self, container: Container) -> None:
        shutil.rmtree(self.directory(container), ignore_errors=True)
