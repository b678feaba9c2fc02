"""Worker processes die with the process that supervises them.

granian (and hypercorn with several workers) serve from child processes. If the supervisor is killed
outright (SIGKILL, the OOM killer), nothing would stop its workers: they would go on serving a socket
no one manages, finishing uploads a restarted registry cannot know about, and holding the port. The
kernel's parent-death signal ends them with it. Only a process whose parent is the supervisor asks for
it: with one hypercorn worker the app runs in the supervisor itself, whose parent (a shell, systemd)
may well exit first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

# Set by `registry serve` in its own environment, which the worker processes inherit.
SUPERVISOR_VARIABLE = "_REGISTRY_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def mark_supervisor() -> None:
    os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())


def die_with_supervisor() -> None:
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if sys.platform != "linux" or supervisor is None or os.getppid() != int(supervisor):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(supervisor):  # it died before the request took effect
        os._exit(1)
