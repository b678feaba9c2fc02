"""The container lifecycle behind `run`, `start`, `restart`, `stop`, `kill`, `rm`, `container prune`,
`exec` and `export`.

A container runs under a monitor: the `registry run` process itself, or for `-d` (and `start`) a small
daemon (the shim) forked off it, with the container's output going to its log. The monitor waits for the
container, applies its restart policy, forwards its published ports, records its exit code, removes its
cgroups and, with `--rm`, the container. Other commands find the container's PID in its record and act
on it directly (signals for `stop` and `kill`, its namespaces for `exec`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from registry.runtime import cgroups, logfile, namespaces, ports, rootfs
from registry.runtime.attach import attach
from registry.runtime.export import export_filesystem
from registry.runtime.launch import RUNTIME_FAILED, Started, StartError, chroot_into, launch
from registry.runtime.linux import sethostname
from registry.runtime.network import bring_up_loopback
from registry.runtime.restart import RestartPolicy, delay
from registry.runtime.spec import Process, merge_env
from registry.runtime.state import (
    LOG,
    STDIN,
    STOPPED_ON_PURPOSE,
    Container,
    ContainerError,
    ContainerStore,
    disk_usage,
    process_start,
)
from registry.unpack import LayerBlob, Limits, Options, RootfsCache

POLL = 0.05


@dataclass(frozen=True)
class RunOptions:
    name: str | None = None
    hostname: str | None = None
    network: str = "none"
    volumes: Sequence[str] = ()
    memory: int | None = None
    pids: int | None = None
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    detach: bool = False
    init: bool = False
    restart: str = "no"
    ports: Sequence[str] = ()


@dataclass(frozen=True)
class ExecOptions:
    args: Sequence[str]
    env: Sequence[str] = ()
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    interactive: bool = False


@dataclass(frozen=True)
class ImageToRun:
    """What `run` needs of a local image: its name, config digest, diff_ids and layer blobs."""

    reference: str  # as the user named it (`ps` shows it so, as Docker does)
    config_digest: str
    diff_ids: list[str]
    layers: Sequence[LayerBlob]


def default_name(reference: str, container_id: str) -> str:
    """The image's last path component and a few ID digits: `busybox-3f2a9c`."""
    repository = reference.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    return f"{re.sub(r'[^a-zA-Z0-9_.-]', '-', repository) or 'container'}-{container_id[:6]}"


@dataclass
class Pruned:
    containers: list[Container]
    roots: list[Path] = field(default_factory=list)  # unpacked images no longer needed
    reclaimed: int = 0  # bytes


class Runtime:
    def __init__(self, store: ContainerStore) -> None:
        self.store = store
        self.userns = os.geteuid() != 0
        self.cache = RootfsCache(store.root / "rootfs", Options(limits=Limits.from_env()))

    # ---------------------------------------------------------------------------------------- create

    def create(self, image: ImageToRun, process: Process, options: RunOptions) -> Container:
        """Unpack the image (once per image), then record the container and prepare its root."""
        volumes = [rootfs.Volume.parse(spec) for spec in options.volumes]
        if options.network not in ("none", "host"):
            raise ValueError(f"unknown network {options.network!r}: use none or host")
        policy = RestartPolicy.parse(options.restart)
        if options.auto_remove and policy.name != "no":
            raise ValueError("conflicting options: --restart and --rm (a removed container cannot restart)")
        for spec in options.ports:
            ports.PortMapping.parse(spec)  # refused now, before anything is created
        published = list(options.ports)
        if published and options.network == "host":
            print("registry: warning: published ports are discarded with --network host", file=sys.stderr)
            published = []
        if published and self.userns:
            raise ValueError("publishing ports (-p) needs root: the forwarder enters the container's network")
        self.store.make_root()
        lower = self.cache.rootfs(image.layers, image.diff_ids)
        for volume in volumes:
            if not volume.host.exists():
                volume.host.mkdir(parents=True)  # as Docker does for a missing host folder
        container_id = secrets.token_hex(32)
        hostname = options.hostname or container_id[:12]
        container = Container(
            id=container_id,
            name=options.name or default_name(image.reference, container_id),
            image=image.reference,
            image_id=image.config_digest,
            args=process.args,
            env=merge_env([f"HOSTNAME={hostname}"], process.env),
            workdir=process.workdir,
            user=process.user,
            hostname=hostname,
            network=options.network,
            tty=options.tty,
            interactive=options.interactive,
            volumes=list(options.volumes),
            lower=str(lower),
            storage="overlay",
            userns=self.userns,
            auto_remove=options.auto_remove,
            detached=options.detach,
            init=options.init,
            memory=options.memory,
            pids=options.pids,
            restart=str(policy),
            ports=published,
        )
        directory = self.store.create(container)
        try:
            container.storage = rootfs.prepare(directory, lower, self.userns)
            rootfs.write_etc_files(directory, container.hostname, options.network == "host")
            self._make_cgroups(container)
            self.store.save(container)
        except BaseException:
            self.store.remove(container)
            raise
        return container

    def _make_cgroups(self, container: Container) -> None:
        """The container's limits, made at create and again at each start (an exit removes them)."""
        limits = cgroups.ResourceLimits(container.memory, container.pids)
        if limits:
            try:
                container.cgroups = cgroups.create(container.id, limits)
            except cgroups.CgroupsUnavailable as error:
                container.cgroups = []
                print(f"registry: warning: {error}; running without limits", file=sys.stderr)

    # ---------------------------------------------------------------------------------------- start

    def _start(self, container: Container) -> Started:
        directory = self.store.directory(container)
        volumes = [rootfs.Volume.parse(spec) for spec in container.volumes]
        flags = namespaces.container_flags(private_network=container.network == "none")

        def enter() -> None:
            namespaces.create(flags, container.userns)

        def setup() -> None:
            sethostname(container.hostname)
            if container.network == "none":
                bring_up_loopback()
            rootfs.setup(directory, Path(container.lower), container.storage, container.userns, volumes)

        process = Process(container.args, container.env, container.workdir, container.user)
        if container.status != "created":
            self._make_cgroups(container)
        try:
            started = launch(
                enter, setup, process, container.tty, container.interactive, container.cgroups, container.init
            )
        except StartError as error:
            self._finish(container, error.code)
            raise
        container.status = "running"
        container.pid = started.pid
        container.pid_start = process_start(started.pid)
        container.started = time.time()
        self.store.save(container)
        return started

    def _finish(self, container: Container, code: int | None) -> None:
        container.status = "exited"
        container.exit_code = code
        container.finished = time.time()
        cgroups.remove(container.cgroups)
        if container.auto_remove:
            self.store.remove(container)
            return
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by `rm -f`
            self.store.save(container)

    @contextlib.contextmanager
    def _published(self, container: Container) -> Iterator[Callable[[Started], Started]]:
        """Bind the container's published ports (a busy one fails the start); the function it gives
        points them at a started process's network namespace. They close when the monitor is done."""
        listeners = {}
        try:
            for spec in container.ports:
                mapping = ports.PortMapping.parse(spec)
                listeners[ports.listen(mapping)] = mapping
        except ValueError:
            for listener in listeners:
                listener.close()
            raise
        forwarder: ports.Forwarder | None = None

        def publish(started: Started) -> Started:
            nonlocal forwarder
            if listeners:
                if forwarder is None:
                    forwarder = ports.Forwarder(listeners)
                forwarder.target(started.pid)
            return started

        try:
            yield publish
        finally:
            if forwarder is not None:
                forwarder.close()
            for listener in listeners:
                listener.close()

    def run(self, container: Container) -> int:
        """Run attached to this terminal and return the container's exit code."""
        try:
            with self._published(container) as publish:
                code = attach(lambda: publish(self._start(container)), container.interactive)
        except ValueError as error:
            self._finish(container, RUNTIME_FAILED)
            raise StartError(RUNTIME_FAILED, str(error)) from None
        self._finish(container, code)
        return code

    def start(self, container: Container, attached: bool = False) -> int:
        """Start a created or stopped container again, on the writable layer it had: under a shim
        (returns 0 once it runs), or `attached` to this terminal (returns its exit code)."""
        if container.running:
            return 0
        with contextlib.suppress(FileNotFoundError):
            (self.store.directory(container) / STOPPED_ON_PURPOSE).unlink()
        container.restart_count = 0
        if attached:
            return self.run(container)
        self.run_detached(container)
        return 0

    def restart(self, container: Container, timeout: float = 10.0) -> None:
        self.stop(container, timeout)
        self.start(self.store.load(container.id))

    def run_detached(self, container: Container) -> None:
        """Start the container under a shim of its own and return once it runs (or failed to)."""
        ready_read, ready_write = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(ready_read)
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)  # the shim is reparented to init: no zombie is left for our caller
                self._shim(container, ready_write)
            finally:
                os._exit(0)
        os.close(ready_write)
        os.waitpid(child, 0)
        with os.fdopen(ready_read, "rb") as ready:
            failure = ready.read().decode(errors="replace")
        if failure:
            code, _, message = failure.partition(" ")
            raise StartError(int(code), message)

    def _shim(self, container: Container, ready: int) -> None:
        """Start the container, record its output, and start it again as its restart policy says."""
        directory = self.store.directory(container)
        log = os.open(directory / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.dup2(self._input(container, directory), 0)
        policy = RestartPolicy.parse(container.restart)
        with contextlib.ExitStack() as stack:
            try:
                publish = stack.enter_context(self._published(container))
                started, outputs = self._start_recorded(container, publish)
            except StartError as error:
                os.write(ready, f"{error.code} {error}".encode())
                return
            except BaseException as error:
                os.write(ready, f"{RUNTIME_FAILED} {error}".encode())
                if isinstance(error, ValueError):  # a port that cannot be published
                    self._finish(container, RUNTIME_FAILED)
                    return
                raise
            os.close(ready)
            while True:
                logfile.record(outputs, log)
                code = started.wait()
                if not policy.restarts(code, container.restart_count, self._stopped_on_purpose(container)):
                    break
                time.sleep(delay(container.restart_count))
                if self._stopped_on_purpose(container):
                    break
                container.restart_count += 1
                container.exit_code = code
                try:
                    started, outputs = self._start_recorded(container, publish)
                except StartError:
                    return  # recorded as exited by _start
        self._finish(container, code)

    def _input(self, container: Container, directory: Path) -> int:
        """A detached container's standard input: with -i a FIFO that `attach` writes to (opened for
        reading and writing, so it never ends while the shim lives), else /dev/null."""
        if not container.interactive or container.tty:
            return os.open(os.devnull, os.O_RDWR)
        fifo = directory / STDIN
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        return os.open(fifo, os.O_RDWR)

    def _start_recorded(
        self, container: Container, publish: Callable[[Started], Started]
    ) -> tuple[Started, dict[int, int]]:
        """Start with stdout and stderr on pipes the shim records apart (a terminal, with -t, is one
        stream, as Docker has it); the descriptors to record."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        for source, target in ((out_write, 1), (err_write, 2)):
            os.dup2(source, target)
            os.close(source)
        try:
            started = publish(self._start(container))
        except BaseException:
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):  # only the container may hold the pipes' write ends: their end is its end
                os.dup2(null, fd)
            os.close(null)
        if started.console is not None:
            os.close(out_read)
            os.close(err_read)
            return started, {started.console: logfile.STDOUT}
        return started, {out_read: logfile.STDOUT, err_read: logfile.STDERR}

    def _stopped_on_purpose(self, container: Container) -> bool:
        return (self.store.directory(container) / STOPPED_ON_PURPOSE).exists()

    def _mark_stopped(self, container: Container) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.store.directory(container) / STOPPED_ON_PURPOSE).touch()

    # ---------------------------------------------------------------------------------------- stop, rm

    def stop(self, container: Container, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns once the exit is recorded."""
        self._mark_stopped(container)
        if not self._end(container, signal.SIGTERM, timeout):
            self.kill(container)

    def kill(self, container: Container, number: int = signal.SIGKILL) -> None:
        """Send `number` to the container's first process; SIGKILL (a stop on purpose) also waits for
        the exit to be recorded. Another signal is the container's business, as with `docker kill -s`."""
        if number != signal.SIGKILL:
            if not container.running:
                raise ContainerError(f"container {container.name} is not running")
            assert container.pid is not None
            os.kill(container.pid, number)
            return
        self._mark_stopped(container)
        if not self._end(container, signal.SIGKILL, 10.0):
            self._finish(container, None)  # its monitor is gone: nobody saw the exit code

    def _end(self, container: Container, number: int, timeout: float) -> bool:
        """Signal the container's process until its monitor records the end; False after `timeout`.

        The record is read afresh each time: a monitor between two runs of a restart policy has a
        dead PID on record and then a new one, which is signalled in turn (the stop marker, set first,
        keeps a third from starting)."""
        deadline = time.monotonic() + timeout
        signalled = None
        while True:
            try:
                current = self.store.load(container.id)
            except KeyError:
                return True
            if current.status != "running":
                return True
            if current.running and current.pid != signalled:
                assert current.pid is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(current.pid, number)
                signalled = current.pid
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def remove(self, container: Container, force: bool = False) -> None:
        if container.running:
            if not force:
                raise ContainerError(
                    f"cannot remove container {container.name}: it is running (stop it first, or use -f)"
                )
            self.kill(container)
        cgroups.remove(container.cgroups)
        self.store.remove(container)

    def prune(self, images: Iterable[Sequence[str]]) -> Pruned:
        """Remove the stopped containers, then the unpacked roots that neither a remaining container
        nor a local image (given by its diff_ids) needs any more."""
        pruned = Pruned([c for c in self.store.all() if not c.running])
        for container in pruned.containers:
            pruned.reclaimed += disk_usage(self.store.directory(container))
            self.remove(container)
        for root, size in self.remove_roots(self.cache.roots(), images).items():
            pruned.roots.append(root)
            pruned.reclaimed += size
        return pruned

    def remove_roots(self, candidates: Iterable[Path], images: Iterable[Sequence[str]]) -> dict[Path, int]:
        """Delete the unpacked roots among `candidates` that neither a local image (given by its diff_ids)
        nor any container runs on; the bytes each one took."""
        wanted = {str(self.cache.path(diff_ids)) for diff_ids in images}
        wanted |= {container.lower for container in self.store.all()}
        removed = {}
        for root in candidates:
            if root.is_dir() and str(root) not in wanted:
                removed[root] = disk_usage(root)
                shutil.rmtree(root)
        return removed

    # ---------------------------------------------------------------------------------------- exec, export

    def exec(self, container: Container, options: ExecOptions) -> int:
        """Run a process in a running container's namespaces, cgroups and root; its exit code."""
        if not container.running:
            raise ContainerError(f"container {container.name} is not running")
        assert container.pid is not None
        pid = container.pid
        process = Process(
            list(options.args),
            merge_env(container.env, options.env),
            options.workdir or container.workdir,
            options.user if options.user is not None else container.user,
        )
        roots: list[int] = []

        def start() -> Started:
            return launch(
                lambda: roots.append(namespaces.join(pid)),
                lambda: chroot_into(roots[0])(),
                process,
                options.tty,
                options.interactive,
                container.cgroups,
            )

        return attach(start, options.interactive)

    def export(self, container: Container, out: BinaryIO) -> None:
        """Write the container's filesystem (its image and its changes, no runtime mounts) as a tar."""
        export_filesystem(container, self.store.directory(container), out)
