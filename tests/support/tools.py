"""External tools for tests: under REGISTRY_TEST_STRICT=1 a missing tool fails the test, never skips it."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

STRICT = os.environ.get("REGISTRY_TEST_STRICT") == "1"


def unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (REGISTRY_TEST_STRICT=1: missing tools fail)")
    pytest.skip(reason)


def require_tool(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        path = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/lib/postgresql/15/bin/{name}") if os.path.exists(p)),
            None,
        )
        if path is None:
            unavailable(f"{name} is not installed")
        found[name] = path
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
