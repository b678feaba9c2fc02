"""Starting a process inside namespaces: the fork dance shared by `run` and `exec`.

    monitor (the `registry` command, or a detached container's shim)
      └── outer: joins the cgroups, creates (run) or joins (exec) the namespaces, forks
            └── inner: in the new PID namespace (PID 1 for `run`); builds its root (run) or chroots
                into the container's (exec), makes the terminal, takes the user's identity, execs

A new PID namespace applies only to children of the process that made it, hence the outer process: it
stays in the host's PID namespace, reports the inner process's host PID, and exits with its status
(128 + N when killed by signal N, as shells report). Failures before exec travel back over a
close-on-exec pipe, so a clean end of that pipe means the exec happened; a failed exec is reported with
Docker's codes (127: not found, 126: cannot run it, 125: the runtime failed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from registry.runtime import cgroups, console
from registry.runtime.capabilities import drop_capabilities
from registry.runtime.spec import Process, merge_env
from registry.runtime.users import Identity, resolve_user

RUNTIME_FAILED = 125
CANNOT_RUN = 126
NOT_FOUND = 127
# What a monitor (or --init) passes on to the container's process.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# What the outer process must survive: the user's terminal sends them to its whole process group.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGTSTP)


class StartError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Started:
    pid: int  # the process in the container, as the host sees it
    outer: int
    console: int | None  # the terminal's master end, with `tty`

    def wait(self) -> int:
        _, status = os.waitpid(self.outer, 0)
        return exit_code(status)


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _report(pipe: int, code: int, message: str) -> NoReturn:
    try:
        os.write(pipe, f"{code} {message}".encode(errors="replace"))
    finally:
        os._exit(code)


def _close_fds_but(keep: set[int]) -> None:
    """The outer process never execs, so it must drop by hand what the monitor had open (a detached
    container's start pipe, the user's terminal...): whoever waits for those to close would wait for
    the container to end."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _default_signals() -> None:
    """exec keeps ignored signals ignored: undo Python's (SIGPIPE, SIGXFSZ) and the outer process's."""
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(number, signal.SIG_DFL)
            except (OSError, ValueError):
                continue


def launch(
    enter: Callable[[], None],
    setup: Callable[[], None],
    process: Process,
    tty: bool,
    stdin: bool,
    cgroup_dirs: list[str],
    init: bool = False,
) -> Started:
    """Start `process`: `enter` runs in the outer process (namespaces), `setup` in the inner one before
    anything else (its root). With `init`, the inner process stays as a tiny init that forwards signals
    to `process` and reaps orphans. Raises StartError if it failed before its exec."""
    pid_read, pid_write = os.pipe()
    error_read, error_write = os.pipe()
    parent_channel, child_channel = socket.socketpair() if tty else (None, None)
    outer = os.fork()
    if outer == 0:
        try:
            _close_fds_but({pid_write, error_write, *([child_channel.fileno()] if child_channel else [])})
            for number in TERMINAL_SIGNALS:
                signal.signal(number, signal.SIG_IGN)
            cgroups.join(cgroup_dirs)
            enter()
            inner = os.fork()
            if inner == 0:
                os.close(pid_write)
                _inner(setup, process, tty, stdin, child_channel, error_write, init)
            os.write(pid_write, str(inner).encode())
            os.close(pid_write)
            os.close(error_write)
            if child_channel is not None:
                child_channel.close()
            _, status = os.waitpid(inner, 0)
            os._exit(exit_code(status))
        except BaseException as error:  # a forked child must never return into its parent's code
            _report(error_write, RUNTIME_FAILED, str(error) or type(error).__name__)
    os.close(pid_write)
    os.close(error_write)
    if child_channel is not None:
        child_channel.close()
    pid_text = _read_all(pid_read)
    master = console.receive_console(parent_channel) if parent_channel is not None else None
    if parent_channel is not None:
        parent_channel.close()
    failure = _read_all(error_read)
    if failure or not pid_text:
        os.waitpid(outer, 0)
        code, _, message = failure.decode(errors="replace").partition(" ")
        if master is not None:
            os.close(master)
        raise StartError(
            int(code) if code.isdigit() else RUNTIME_FAILED, message or "the container did not start"
        )
    return Started(int(pid_text), outer, master)


def _inner(
    setup: Callable[[], None],
    process: Process,
    tty: bool,
    stdin: bool,
    channel: socket.socket | None,
    errors: int,
    init: bool,
) -> NoReturn:
    step = "setting up the container"
    try:
        setup()
        if init and (child := os.fork()) != 0:
            os.close(errors)
            if channel is not None:
                channel.close()
            _init(child)
        step = "setting up standard input and output"
        if channel is not None:
            console.become_console(channel)
        else:
            if not stdin:
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
            os.setsid()  # the user's terminal signals the container only through the monitor
        step = f"user {process.user!r}"
        identity = resolve_user(process.user)
        env = merge_env([f"HOME={identity.home}"], process.env)
        if tty and not any(item.startswith("TERM=") for item in env):
            env.append("TERM=xterm")
        step = f"working directory {process.workdir!r}"
        os.makedirs(process.workdir, exist_ok=True)
        os.chdir(process.workdir)
        step = "dropping privileges"
        drop_capabilities()
        _become(identity)
        _default_signals()
    except BaseException as error:  # reported to the monitor, which prints it
        detail = str(error) or type(error).__name__
        _report(errors, RUNTIME_FAILED, f"{step}: {detail}" if isinstance(error, OSError) else detail)
    program = process.args[0]
    try:
        os.execvpe(program, process.args, dict(item.partition("=")[::2] for item in env))
    except FileNotFoundError:
        _report(errors, NOT_FOUND, f"exec: {program!r}: executable file not found in $PATH")
    except OSError as error:
        _report(errors, CANNOT_RUN, f"exec: {program!r}: {error.strerror}")


def _become(identity: Identity) -> None:
    # A user namespace made by an unprivileged user denies setgroups: its one group is all there is.
    if Path("/proc/self/setgroups").read_text().strip() != "deny":
        os.setgroups(identity.groups)
    os.setgid(identity.gid)
    os.setuid(identity.uid)


def _init(child: int) -> NoReturn:
    """PID 1 of `--init`: signals go on to the real process; every process orphaned in the container
    becomes ours and is reaped, so no zombie piles up; the container ends when the real process does."""

    def forward(number: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, number)

    for number in FORWARDED:
        signal.signal(number, forward)
    while True:
        pid, status = os.wait()
        if pid == child:
            os._exit(exit_code(status))


def chroot_into(root: int) -> Callable[[], None]:
    """The inner setup of `exec`: the container's root, joined through a descriptor of it."""

    def setup() -> None:
        os.fchdir(root)
        os.chroot(".")
        os.close(root)
        os.chdir(Path("/"))

    return setup
