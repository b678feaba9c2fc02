"""`registry run`, `ps`, `logs`, `stop`, `rm`, `container prune`, `exec` and `export`: Docker's container
commands, on images from the local image store."""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.cli.images import client_options, pull_for_run

if TYPE_CHECKING:  # imported by the commands themselves, so other commands start without them
    from registry.runtime.containers import Runtime
    from registry.runtime.state import Container

SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_bytes(text: str) -> int:
    """`--memory`: bytes, or with a k, m or g suffix as Docker takes them (`64m`)."""
    match = re.fullmatch(r"(\d+)([bkmg]?)", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number of bytes, or 512k, 64m, 1g")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def register(commands: Any) -> None:
    store, network = client_options()
    run = commands.add_parser("run", help="run a command in a new container", parents=[store, network])
    _process_arguments(run)
    run.add_argument(
        "--rm", dest="auto_remove", action="store_true", help="remove the container when it exits"
    )
    run.add_argument("-d", "--detach", action="store_true", help="run in the background and print its ID")
    run.add_argument("--name", help="the container's name (default: image name and ID digits)")
    run.add_argument(
        "--init", action="store_true", help="a tiny init as PID 1: forwards signals, reaps zombies"
    )
    run.add_argument("--entrypoint", help="override the image's entrypoint (also drops its Cmd)")
    run.add_argument("--network", choices=("none", "host"), default="none", help="none: only lo (default)")
    run.add_argument("-v", "--volume", action="append", default=[], help="bind mount HOST:CONTAINER[:ro]")
    run.add_argument("-m", "--memory", type=parse_bytes, help="memory limit (bytes, or 64m, 1g, ...)")
    run.add_argument("--pids-limit", type=int, help="limit on the number of processes")
    run.add_argument("--hostname", help="the container's host name (default: its short ID)")
    run.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOSTPORT:PORT",
        help="forward a host port (on 127.0.0.1 unless IP is given) to the container's port",
    )
    run.add_argument(
        "--restart",
        default="no",
        metavar="POLICY",
        help="no (default), on-failure[:N], always or unless-stopped",
    )
    run.add_argument(
        "--pull",
        choices=("missing", "never"),
        default="missing",
        help="pull the image when it is not in the local store (default), or never",
    )
    run.add_argument("--platform", help="os/arch[/variant] to pull, when pulling from a multi-platform image")
    run.add_argument("image", help="image reference or ID in the local store")
    run.add_argument("args", nargs=argparse.REMAINDER, help="command and arguments")
    run.set_defaults(run=run_run)

    ps = commands.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="also stopped containers")
    ps.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ps.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    ps.set_defaults(run=run_ps)

    logs = commands.add_parser("logs", help="print a detached container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the container stops")
    logs.add_argument("container")
    logs.set_defaults(run=run_logs)

    stop = commands.add_parser("stop", help="stop running containers (SIGTERM, then SIGKILL)")
    _stop_time(stop)
    stop.add_argument("containers", nargs="+")
    stop.set_defaults(run=run_stop)

    start = commands.add_parser("start", help="start stopped containers again, keeping their files")
    start.add_argument("-a", "--attach", action="store_true", help="stay attached to its output")
    start.add_argument("containers", nargs="+")
    start.set_defaults(run=run_start)

    restart = commands.add_parser("restart", help="stop, then start containers")
    _stop_time(restart)
    restart.add_argument("containers", nargs="+")
    restart.set_defaults(run=run_restart)

    kill = commands.add_parser("kill", help="send a signal to running containers (default SIGKILL)")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")
    kill.add_argument("containers", nargs="+")
    kill.set_defaults(run=run_kill)

    attach = commands.add_parser("attach", help="follow a running container's output (and feed its input)")
    attach.add_argument("--no-stdin", action="store_true", help="do not pass standard input on")
    attach.add_argument("container")
    attach.set_defaults(run=run_attach)

    cp = commands.add_parser("cp", help="copy files between a container and the host")
    cp.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar on stdin)")
    cp.add_argument("destination", metavar="DEST", help="CONTAINER:PATH, a host path, or - (a tar to stdout)")
    cp.set_defaults(run=run_cp)

    rm = commands.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill running ones first")
    rm.add_argument("containers", nargs="+")
    rm.set_defaults(run=run_rm)

    container = commands.add_parser("container", help="manage containers")
    actions = container.add_subparsers(dest="action", required=True, metavar="ACTION")
    prune = actions.add_parser("prune", help="remove every stopped container")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.add_argument(
        "--root",
        type=Path,
        default=argparse.SUPPRESS,
        help="local image store, whose images' roots are kept",
    )
    prune.set_defaults(run=run_prune)

    exec_ = commands.add_parser("exec", help="run a command in a running container")
    _process_arguments(exec_)
    exec_.add_argument("container")
    exec_.add_argument("args", nargs=argparse.REMAINDER, metavar="command", help="command and arguments")
    exec_.set_defaults(run=run_exec)

    export = commands.add_parser("export", help="write a container's filesystem as a tar archive")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("container")
    export.set_defaults(run=run_export)


def _stop_time(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--time", type=float, default=10.0, help="seconds before SIGKILL (default 10)")


def _process_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--interactive", action="store_true", help="keep standard input open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    parser.add_argument("-e", "--env", action="append", default=[], help="set K=V (or pass K from here)")
    parser.add_argument("-w", "--workdir", help="working directory inside the container")
    parser.add_argument("-u", "--user", help="user[:group] or uid[:gid]")


def _error(message: object, code: int = 1) -> int:
    print(f"registry: {message}", file=sys.stderr)
    return code


def _no_terminal(args: argparse.Namespace) -> bool:
    """`-it` relays the user's terminal; with input that is no terminal there is nothing to relay, and
    Docker refuses rather than allocate one anyway."""
    return args.tty and args.interactive and not sys.stdin.isatty()


def _runtime() -> Runtime:
    from registry.runtime.containers import Runtime
    from registry.runtime.state import ContainerStore

    return Runtime(ContainerStore())


def run_run(args: argparse.Namespace) -> int:
    from registry.client.store import ImageNotFound, ImageStore
    from registry.runtime import spec
    from registry.runtime.containers import ImageToRun, RunOptions
    from registry.runtime.launch import RUNTIME_FAILED, StartError
    from registry.unpack import UnpackError

    if _no_terminal(args):
        return _error("the input device is not a TTY")
    try:
        image = ImageStore(args.root).image(args.image)
    except ImageNotFound:
        if args.pull == "never":
            return _error(f"Unable to find image {args.image!r} locally (--pull never)", 125)
        if pull_for_run(args) != 0:
            return RUNTIME_FAILED
        image = ImageStore(args.root).image(args.image)
    runtime = _runtime()
    try:
        process = spec.process(image.config, args.args, args.entrypoint, args.env, args.workdir, args.user)
        options = RunOptions(
            name=args.name,
            hostname=args.hostname,
            network=args.network,
            volumes=args.volume,
            memory=args.memory,
            pids=args.pids_limit,
            tty=args.tty,
            interactive=args.interactive,
            auto_remove=args.auto_remove,
            detach=args.detach,
            init=args.init,
            restart=args.restart,
            ports=args.publish,
        )
        diff_ids = list(image.config.get("rootfs", {}).get("diff_ids", []))
        to_run = ImageToRun(args.image, image.config_digest, diff_ids, image.layers)
        container = runtime.create(to_run, process, options)
    except (ValueError, UnpackError, OSError) as error:
        return _error(error, RUNTIME_FAILED)
    try:
        if args.detach:
            runtime.run_detached(container)
            print(container.id)
            return 0
        return runtime.run(container)
    except StartError as error:
        return _error(error, error.code)


def _since(moment: float) -> str:
    seconds = max(0, int(time.time() - moment))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def status_text(container: Container) -> str:
    if container.running:
        return f"Up {_since(container.started or container.created)}"
    if container.status == "created":
        return "Created"
    code = "unknown" if container.exit_code is None else container.exit_code
    return f"Exited ({code}) {_since(container.finished or container.created)} ago"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_ps(args: argparse.Namespace) -> int:
    from registry.runtime.state import ContainerStore

    containers = [c for c in ContainerStore().all() if args.all or c.running]
    if args.quiet:
        for container in containers:
            print(container.id if args.no_trunc else container.short_id)
        return 0
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for container in containers:
        command = shlex.join(container.args)
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append(
            (
                container.id if args.no_trunc else container.short_id,
                container.image,
                f'"{command}"',
                f"{_since(container.created)} ago",
                status_text(container),
                container.name,
            )
        )
    print(_table(rows))
    return 0


def _each(references: Sequence[str], action: Callable[[Container], None]) -> int:
    """Apply `action` to each named container, printing its name as Docker does; 1 if any failed."""
    from registry.runtime.state import ContainerError, ContainerNotFound, ContainerStore

    code = 0
    store = ContainerStore()
    for reference in references:
        try:
            action(store.find(reference))
            print(reference)
        except (ContainerNotFound, ContainerError) as error:
            code = _error(error)
    return code


def run_stop(args: argparse.Namespace) -> int:
    runtime = _runtime()
    return _each(args.containers, lambda c: runtime.stop(c, args.time))


def run_start(args: argparse.Namespace) -> int:
    from registry.runtime.launch import StartError
    from registry.runtime.state import ContainerError

    runtime = _runtime()
    if args.attach:
        if len(args.containers) != 1:
            return _error("you cannot start and attach multiple containers at once")
        try:
            return runtime.start(runtime.store.find(args.containers[0]), attached=True)
        except (KeyError, ValueError) as error:
            return _error(error)
        except StartError as error:
            return _error(error, error.code)

    def start(container: Container) -> None:
        try:
            runtime.start(container)
        except StartError as error:
            raise ContainerError(f"cannot start container {container.name}: {error}") from None

    return _each(args.containers, start)


def run_restart(args: argparse.Namespace) -> int:
    runtime = _runtime()
    return _each(args.containers, lambda c: runtime.restart(c, args.time))


def parse_signal(text: str) -> int:
    """`KILL`, `SIGKILL`, `kill` or `9`, as `docker kill -s` takes them."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"invalid signal {text!r}") from None


def run_kill(args: argparse.Namespace) -> int:
    try:
        number = parse_signal(args.signal)
    except ValueError as error:
        return _error(error)
    runtime = _runtime()
    return _each(args.containers, lambda c: runtime.kill(c, number))


def run_attach(args: argparse.Namespace) -> int:
    from registry.runtime.attaching import attach_to
    from registry.runtime.state import ContainerError, ContainerNotFound, ContainerStore

    store = ContainerStore()
    try:
        return attach_to(store, store.find(args.container), stdin=not args.no_stdin)
    except (ContainerNotFound, ContainerError) as error:
        return _error(error)


def _container_path(text: str) -> tuple[str, str] | None:
    """`NAME:PATH` names a path in a container; a host path has no colon before its first slash."""
    name, colon, path = text.partition(":")
    if not colon or "/" in name or not name:
        return None
    return name, path or "/"


def run_cp(args: argparse.Namespace) -> int:
    from registry.runtime.copy import copy_in, copy_out
    from registry.runtime.state import ContainerError, ContainerNotFound, ContainerStore

    source, destination = _container_path(args.source), _container_path(args.destination)
    if (source is None) == (destination is None):
        return _error("copying needs exactly one side in a container: CONTAINER:PATH", 2)
    store = ContainerStore()
    try:
        if source is not None:
            container = store.find(source[0])
            target = None if args.destination == "-" else Path(args.destination)
            copy_out(container, store.directory(container), source[1], target)
        else:
            assert destination is not None
            container = store.find(destination[0])
            origin = None if args.source == "-" else args.source
            copy_in(container, store.directory(container), origin, destination[1])
    except (ContainerNotFound, ContainerError) as error:
        return _error(error)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    runtime = _runtime()
    return _each(args.containers, lambda c: runtime.remove(c, force=args.force))


def run_prune(args: argparse.Namespace) -> int:
    if not args.force:
        answer = input(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    from registry.client.store import ImageStore

    images = [listing.image.config.get("rootfs", {}) for listing in ImageStore(args.root).list_images()]
    pruned = _runtime().prune([rootfs.get("diff_ids", []) for rootfs in images])
    if pruned.containers:
        print("Deleted Containers:")
        for container in pruned.containers:
            print(container.id)
        print()
    if pruned.roots:
        print(f"Deleted {len(pruned.roots)} unpacked image(s) no container or local image uses")
    print(f"Total reclaimed space: {pruned.reclaimed / 1e6:.1f}MB")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from registry.runtime import logfile
    from registry.runtime.state import LOG, ContainerNotFound, ContainerStore

    store = ContainerStore()
    try:
        container = store.find(args.container)
    except ContainerNotFound as error:
        return _error(error)
    path = store.directory(container) / LOG
    if not path.exists():
        return 0
    sinks = {logfile.STDOUT: sys.stdout.buffer, logfile.STDERR: sys.stderr.buffer}
    with open(path, "rb") as log:
        for stream, data in logfile.replay(log, lambda: args.follow and container.running):
            sinks[stream].write(data)
            sinks[stream].flush()
    return 0


def run_exec(args: argparse.Namespace) -> int:
    from registry.runtime.containers import ExecOptions
    from registry.runtime.launch import StartError
    from registry.runtime.state import ContainerError, ContainerNotFound, ContainerStore

    if not args.args:
        return _error("exec needs a command to run", 2)
    if _no_terminal(args):
        return _error("the input device is not a TTY")
    try:
        container = ContainerStore().find(args.container)
        options = ExecOptions(args.args, args.env, args.workdir, args.user, args.tty, args.interactive)
        return _runtime().exec(container, options)
    except (ContainerNotFound, ContainerError) as error:
        return _error(error)
    except StartError as error:
        return _error(error, error.code)


def run_export(args: argparse.Namespace) -> int:
    from registry.runtime.state import ContainerError, ContainerNotFound, ContainerStore

    if args.output is None and sys.stdout.isatty():
        return _error("cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect")
    try:
        container = ContainerStore().find(args.container)
        runtime = _runtime()
        if args.output is None:
            runtime.export(container, sys.stdout.buffer)
        else:
            with open(args.output, "wb") as out:
                runtime.export(container, out)
    except (ContainerNotFound, ContainerError) as error:
        return _error(error)
    return 0
