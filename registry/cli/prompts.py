"""Questions to the operator at a terminal. Without one (a script, a container, cron), a prompt would
read a pipe or end-of-file and fail obscurely: it fails at once instead, naming the flag to pass."""

from __future__ import annotations

import sys


def require_terminal(question: str, flag: str) -> None:
    if not sys.stdin.isatty():
        raise ValueError(f"no terminal to ask {question}: pass {flag}")
