"""`-t`: a real pseudo-terminal made inside the container, its master end relayed by the monitor.

The terminal comes from the container's own devpts instance (its /dev/ptmx), so inside `tty` names a
/dev/pts entry that exists there. The container's first process makes it, becomes its session leader
and hands the master end over a Unix socket to the monitor, which copies bytes between it and the
user's terminal (put in raw mode, so ^C and friends reach the container's line discipline) and passes
on window-size changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import termios
import tty
from collections.abc import Iterator
from types import FrameType

from registry.runtime.linux import TIOCSCTTY

CHUNK = 65536
EOT = b"\x04"


def become_console(channel: socket.socket) -> None:
    """In the container, before exec: make a terminal, send its master end, take the slave as stdio."""
    master, slave = os.openpty()
    with contextlib.suppress(OSError):  # the user's terminal size, when stdin is one
        fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
    socket.send_fds(channel, [b"console"], [master])
    os.close(master)
    channel.close()
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def receive_console(channel: socket.socket) -> int | None:
    """The master end, or None when the container failed before making it."""
    _, descriptors, _, _ = socket.recv_fds(channel, 16, 1)
    return descriptors[0] if descriptors else None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on `fd` if it is a terminal, restored afterwards whatever happens."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _copy_window_size(source: int, master: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8))


def relay(master: int, source: int | None, sink: int) -> None:
    """Copy `source` (the user's input, if any) to the terminal and its output to `sink`, until every
    process in the container has closed it. End of input is passed on as ^D, as a terminal would."""
    if source is not None and os.isatty(source):

        def resize(_signal: int, _frame: FrameType | None) -> None:
            _copy_window_size(source, master)

        signal.signal(signal.SIGWINCH, resize)
        _copy_window_size(source, master)
    readers = [master] if source is None else [master, source]
    while True:
        try:
            ready, _, _ = select.select(readers, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, CHUNK)
            except OSError as error:
                if error.errno != errno.EIO:  # EIO: the last slave descriptor was closed
                    raise
                data = b""
            if not data:
                return
            _write_all(sink, data)
        if source is not None and source in ready:
            data = os.read(source, CHUNK)
            _write_all(master, data or EOT)
            if not data:
                readers.remove(source)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
