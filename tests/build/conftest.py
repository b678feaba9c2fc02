"""Fixtures of the builder's tests: a busybox base image pushed to a real `registry serve`, and the real
`registry` command run with a store and containers root of the test's own.

The base holds an empty /www (for the Docker primer's example) and is what every Dockerfile here starts
FROM, by its reference on the loopback registry: the first build of each test pulls it, as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_docker import Docker, docker  # the session's dockerd fixture
from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool, unavailable

__all__ = ["Docker", "docker"]


@dataclass(frozen=True)
class Base:
    server: RegistryProcess
    reference: str  # 127.0.0.1:PORT/base/busybox:1
    layout: Path


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    if os.geteuid() != 0:
        unavailable("RUN starts containers: the builder's tests run as root")
    skopeo = require_tool("skopeo")["skopeo"]
    root = tmp_path_factory.mktemp("build-base")
    layout = build_busybox_layout(root / "layout", tag="1", extra_files={"/www/.keep": ""})
    server = RegistryProcess(root / "server").start()
    reference = f"{server.host}/base/busybox:1"
    copy = [skopeo, "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]
    subprocess.run([*copy, f"oci:{layout}:1", f"docker://{reference}"], check=True, capture_output=True)
    yield Base(server, reference, layout)
    server.stop()


@dataclass
class Registry:
    """`registry ...` as a user runs it, with this test's own store and containers root."""

    env: dict[str, str]
    store: Path

    def __call__(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        options = {"env": self.env, "capture_output": True, "text": True, "timeout": 120, **kwargs}
        result = subprocess.run([sys.executable, "-m", "registry", *args], **options)
        if check:
            assert result.returncode == 0, f"registry {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")},
        "REGISTRY_CLIENT_ROOT": str(tmp_path / "store"),
        "REGISTRY_CONTAINERS_ROOT": str(tmp_path / "containers"),
        "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"),
        "REGISTRY_CERTS_DIRS": str(tmp_path / "certs.d"),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    }
    env.pop("SOURCE_DATE_EPOCH", None)
    return Registry(env, tmp_path / "store")


def write_context(folder: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    """A context folder with `dockerfile` as its Dockerfile and `files` (relative path -> content)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder
