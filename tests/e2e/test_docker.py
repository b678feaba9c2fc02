"""The Docker engine against a real `registry serve`: load, tag, push, remove, pull and run images, on a
top-level and a nested repository name, and a second image that shares a layer (a cross-repository mount).

One private `dockerd` serves the whole session: its own data root, exec root, pid file, unix socket and an
empty daemon config, no iptables and no bridge (containers run with `--network none`). 127.0.0.0/8 is an
insecure registry by default, so pushing to 127.0.0.1:PORT needs no daemon settings.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import ImageTool, require_tool

pytestmark = pytest.mark.clients

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join(
    [
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
MOTD = "a layer of its own on top of the shared busybox layer\n"


class Docker(ImageTool):
    def __init__(self, binary: str, root: Path) -> None:
        super().__init__(
            binary,
            root,
            {
                "DOCKER_HOST": f"unix://{root / 'docker.sock'}",
                "DOCKER_CONFIG": str(root / "client"),  # no ambient credentials or client settings
            },
        )

    def push(self, image: str) -> tuple[str, str]:
        """Push; return (the manifest digest the engine reports, the whole output)."""
        output = self("push", image).stdout
        found = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
        assert found, output
        return found.group(1), output


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    tools = require_tool("dockerd", "docker", "containerd", "runc")
    # A short path: the daemon's unix socket (and containerd's, under the exec root) must stay < 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="e2e-dk-", dir="/tmp"))
    (root / "client").mkdir()
    (root / "daemon.json").write_text("{}")  # never the machine's /etc/docker/daemon.json
    socket = root / "docker.sock"
    assert len(str(socket)) < 100, socket
    command = [
        tools["dockerd"],
        "--config-file", str(root / "daemon.json"),
        "--iptables=false", "--ip-masq=false", "--bridge=none",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
        "-H", f"unix://{socket}",
    ]  # fmt: skip
    log_path = root / "dockerd.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Docker(tools["docker"], root)
    try:
        deadline = time.monotonic() + 60
        while client("info", check=False, timeout=30).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start ({daemon.poll()}):\n{log_path.read_text()[-5000:]}")
            time.sleep(0.2)
        yield client
    finally:
        _stop(daemon, root)
        shutil.rmtree(root, ignore_errors=True)


def _stop(daemon: subprocess.Popen, root: Path) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(60)
        return
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    # A dockerd that had to be killed leaves the containerd it started behind: end that one (by its pid).
    pidfile = root / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def _docker_archive(layout: Path, archive: Path, name: str) -> Path:
    skopeo = require_tool("skopeo")["skopeo"]
    command = [skopeo, "--insecure-policy", "copy", f"oci:{layout}:1", f"docker-archive:{archive}:{name}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return archive


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """docker-archives of two images sharing their busybox layer: local/busybox:1 and local/derived:1."""
    root = tmp_path_factory.mktemp("docker-images")
    base = build_busybox_layout(root / "base", tag="1")
    derived = build_busybox_layout(root / "derived", tag="1", extra_files={"/etc/motd": MOTD})
    return {
        "busybox": _docker_archive(base, root / "busybox.tar", "local/busybox:1"),
        "derived": _docker_archive(derived, root / "derived.tar", "local/derived:1"),
    }


def _load(docker: Docker, archive: Path, name: str) -> str:
    docker("load", "-i", str(archive))
    return docker.inspect(name)["Id"]


def _registry_manifest(client: httpx.Client, name: str, reference: str) -> httpx.Response:
    response = client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})
    assert response.status_code == 200, (name, reference, response.status_code, response.text)
    return response


def test_push_pull_run(server: RegistryProcess, client: httpx.Client, docker: Docker, archives) -> None:
    image_id = _load(docker, archives["busybox"], "local/busybox:1")
    targets = {
        f"{server.host}/nginx": ("nginx", "latest"),
        f"{server.host}/team/app/nginx:1.0": ("team/app/nginx", "1.0"),
    }
    pushed = {}
    for target, (name, tag) in targets.items():
        docker("tag", "local/busybox:1", target)
        digest, _ = docker.push(target)
        response = _registry_manifest(client, name, tag)
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.headers["Content-Type"] == DOCKER_MANIFEST
        manifest = response.json()
        assert manifest["config"]["digest"] == image_id
        for layer in manifest["layers"]:
            head = client.head(f"/v2/{name}/blobs/{layer['digest']}")
            assert head.status_code == 200 and int(head.headers["Content-Length"]) == layer["size"]
        pushed[target] = digest
    # Both names hold the same image, so the same manifest.
    assert len(set(pushed.values())) == 1

    # Remove the image and every name of it: the pulls below must fetch the layers from the registry.
    docker("rmi", "--force", image_id)
    assert not docker.exists(image_id)

    for target, (name, _) in targets.items():
        output = docker("pull", target).stdout
        assert f"Digest: {pushed[target]}" in output, output
        pulled = docker.inspect(target)
        assert pulled["Id"] == image_id
        assert f"{server.host}/{name}@{pushed[target]}" in pulled["RepoDigests"]

    run = docker("run", "--rm", "--network", "none", f"{server.host}/nginx", "echo", "hello")
    assert run.stdout == "hello\n"
    nested = docker(
        "run", "--rm", "--network", "none", f"{server.host}/team/app/nginx:1.0", "cat", "/etc/passwd"
    )
    assert nested.stdout.startswith("root:x:0:0:")

    # By digest too.
    docker("rmi", "--force", image_id)
    by_digest = f"{server.host}/nginx@{pushed[f'{server.host}/nginx']}"
    docker("pull", by_digest)
    assert docker.inspect(by_digest)["Id"] == image_id
    docker("rmi", "--force", image_id)


def test_shared_layer_is_mounted_across_repositories(
    server: RegistryProcess, client: httpx.Client, docker: Docker, archives, repo: str
) -> None:
    base_id = _load(docker, archives["busybox"], "local/busybox:1")
    derived_id = _load(docker, archives["derived"], "local/derived:1")
    base, derived = f"{server.host}/{repo}/base:1", f"{server.host}/{repo}/derived:1"
    docker("tag", "local/busybox:1", base)
    docker("tag", "local/derived:1", derived)

    base_digest, _ = docker.push(base)
    derived_digest, output = docker.push(derived)
    # The engine knows the busybox layer is in the registry already (in {repo}/base, or wherever an
    # earlier test pushed it) and asks for a cross-repository mount instead of uploading it again.
    assert "Mounted from" in output, output

    base_manifest = _registry_manifest(client, f"{repo}/base", "1").json()
    derived_manifest = _registry_manifest(client, f"{repo}/derived", "1").json()
    assert _registry_manifest(client, f"{repo}/base", "1").headers["Docker-Content-Digest"] == base_digest
    assert (
        _registry_manifest(client, f"{repo}/derived", "1").headers["Docker-Content-Digest"] == derived_digest
    )
    shared = base_manifest["layers"][0]
    assert derived_manifest["layers"][0] == shared
    assert len(derived_manifest["layers"]) == 2
    head = client.head(f"/v2/{repo}/derived/blobs/{shared['digest']}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == shared["size"]

    docker("rmi", "--force", derived_id, base_id)
    docker("pull", derived)
    pulled = docker.inspect(derived)
    assert pulled["Id"] == derived_id
    assert f"{server.host}/{repo}/derived@{derived_digest}" in pulled["RepoDigests"]
    run = docker("run", "--rm", "--network", "none", derived, "cat", "/etc/motd")
    assert run.stdout == MOTD
    docker("rmi", "--force", derived_id)
