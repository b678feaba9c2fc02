"""The runtime's tests drive the real `registry` command on an image that went the whole way a user's
would: built locally, pushed with skopeo to a real `registry serve`, pulled with `registry pull`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool, unavailable

MOTD = "hello from the image\n"


@dataclass(frozen=True)
class Pulled:
    reference: str
    store: Path
    server: str  # host:port of the registry it came from, still serving

    def push_and_pull(self, layout: Path, tag: str, repository: str) -> str:
        """Put another OCI layout's image through the same way; returns its reference."""
        reference = f"{self.server}/{repository}:{tag}"
        skopeo = require_tool("skopeo")["skopeo"]
        copy = [skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false"]
        subprocess.run(
            [*copy, f"oci:{layout}:{tag}", f"docker://{reference}"], check=True, capture_output=True
        )
        env = {**os.environ, "REGISTRY_CLIENT_ROOT": str(self.store)}
        pull = subprocess.run(
            [sys.executable, "-m", "registry", "pull", reference], env=env, capture_output=True, text=True
        )
        assert pull.returncode == 0, pull.stderr
        return reference


@dataclass
class Registry:
    """Runs `registry ...` with this test's own containers root and the session's pulled image."""

    env: dict[str, str]
    containers: Path

    def __call__(self, *args: str, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        options = {"env": self.env, "capture_output": True, "text": True, "timeout": 60, **kwargs}
        result = subprocess.run([sys.executable, "-m", "registry", *args], **options)
        if check:
            assert result.returncode == 0, f"registry {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result

    def inspect(self, container_id: str) -> dict[str, Any]:
        """The container's record, as the runtime keeps it."""
        return json.loads((self.containers / container_id / "container.json").read_text())

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        options = {"env": self.env, "text": True, **kwargs}
        return subprocess.Popen([sys.executable, "-m", "registry", *args], **options)


@pytest.fixture(scope="session")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulled]:
    """busybox with an /etc/motd layer, WorkingDir /srv and GREETING=hello: pushed with skopeo, pulled
    with `registry pull` into a local store of its own."""
    if os.geteuid() != 0:
        unavailable("the runtime tests start containers as root")
    tools = require_tool("skopeo", "umoci")
    base = tmp_path_factory.mktemp("pulled")
    layout = build_busybox_layout(base / "layout", tag="1", extra_files={"/etc/motd": MOTD})
    configure = [tools["umoci"], "config", "--image", f"{layout}:1", "--config.workingdir", "/srv"]
    subprocess.run([*configure, "--config.env", "GREETING=hello"], check=True, capture_output=True)
    server = RegistryProcess(base / "server").start()
    try:
        busybox = Pulled("", base / "store", server.host)
        yield Pulled(busybox.push_and_pull(layout, "1", "test/busybox"), busybox.store, server.host)
    finally:
        server.stop()


@pytest.fixture
def registry(pulled: Pulled, tmp_path: Path) -> Iterator[Registry]:
    containers = tmp_path / "containers"
    env = {
        **os.environ,
        "REGISTRY_CLIENT_ROOT": str(pulled.store),
        "REGISTRY_CONTAINERS_ROOT": str(containers),
    }
    tool = Registry(env, containers)
    yield tool
    leftovers = tool("ps", "-aq", "--no-trunc").stdout.split()
    if leftovers:
        tool("rm", "-f", *leftovers)


@pytest.fixture
def image(pulled: Pulled) -> str:
    return pulled.reference
