"""External tools for tests: under REGISTRY_TEST_STRICT=1 a missing tool fails the test, never skips it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

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


class ImageTool:
    """A container engine's CLI (docker, podman) run with an environment of the test's own."""

    def __init__(self, binary: str, root: Path, env: dict[str, str]) -> None:
        self.binary = binary
        self.root = root
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
            "HOME": str(root),
            **env,
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args]
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check:
            assert result.returncode == 0, (
                f"{command} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def inspect(self, image: str) -> dict:
        return json.loads(self("image", "inspect", image).stdout)[0]

    def exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False).returncode == 0


def run_registry(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `registry` as an operator would, with no terminal (standard input is `stdin`, then end-of-file)
    and only the `REGISTRY_*` variables given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        input=stdin,
    )
