"""`attach`: follow a detached container's output from now on, pass signals and input on, and end with
its exit code, as `docker attach` does.

The output comes from the container's log (the shim records every frame there), so attaching never
slows the container and any number of terminals can attach. Input goes into the FIFO the shim gave a
container started with -i (see Runtime._input); without -i the container has no input to feed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from registry.runtime import logfile
from registry.runtime.attach import forwarding_signals
from registry.runtime.state import LOG, STDIN, Container, ContainerError, ContainerStore


def _feed(fifo: str) -> None:
    """Copy our standard input into the container's until ours ends (theirs stays open)."""
    with contextlib.suppress(OSError), open(fifo, "wb", buffering=0) as sink:
        while data := os.read(0, 65536):
            sink.write(data)


def attach_to(store: ContainerStore, container: Container, stdin: bool = True) -> int:
    if not container.running:
        raise ContainerError(f"you cannot attach to a stopped container {container.name}: start it first")
    directory = store.directory(container)
    fifo = directory / STDIN
    if stdin and container.interactive and fifo.exists():
        threading.Thread(target=_feed, args=(str(fifo),), daemon=True).start()
    sinks = {logfile.STDOUT: sys.stdout.buffer, logfile.STDERR: sys.stderr.buffer}
    with forwarding_signals() as forwarder, open(directory / LOG, "rb") as log:
        assert container.pid is not None
        forwarder.target(container.pid)
        log.seek(0, os.SEEK_END)  # from now on, as Docker's attach (logs shows what came before)
        for stream, data in logfile.replay(log, lambda: container.running):
            sinks[stream].write(data)
            sinks[stream].flush()
    with contextlib.suppress(KeyError):
        container = store.load(container.id)
    return container.exit_code if container.exit_code is not None else 0
