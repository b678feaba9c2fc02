"""The foreground side of a running process: its terminal relayed, signals passed on, its exit code."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType

from registry.runtime import console
from registry.runtime.launch import FORWARDED, Started


class SignalForwarder:
    """Passes the signals this process gets on to the container's process, as `docker run` does.

    Installed before the container starts, so a signal that arrives while it starts is not the end of
    the monitor: it is held until the process is there, then passed on.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []

    def __call__(self, number: int, _frame: FrameType | None) -> None:
        if self.pid is None:
            self.pending.append(number)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)

    def target(self, pid: int) -> None:
        self.pid = pid
        for number in self.pending:
            self(number, None)


@contextlib.contextmanager
def forwarding_signals() -> Iterator[SignalForwarder]:
    forwarder = SignalForwarder()
    previous = {number: signal.signal(number, forwarder) for number in FORWARDED}
    try:
        yield forwarder
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def attach(start: Callable[[], Started], interactive: bool) -> int:
    """Start the process, relay the terminal (with -t) and signals until it ends; its exit code."""
    with forwarding_signals() as forwarder:
        started = start()
        forwarder.target(started.pid)
        if started.console is not None:
            with console.raw_terminal(0):
                console.relay(started.console, 0 if interactive else None, 1)
            os.close(started.console)
        return started.wait()
