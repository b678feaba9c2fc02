"""The container image, built by `deploy/image/build` and run by the real Docker engine as README's
seed command runs it: `docker run -d --restart=always -v HOSTDIR:/var/lib/registry registry`.

Differences from the seed command, forced by this machine: the test's dockerd has no bridge
(`--bridge=none`), so `-p 127.0.0.1:PORT:5000` has nowhere to publish to; the container shares the host's
network (`--network host`) and listens on a free loopback port given by REGISTRY_HTTP_ADDR. The base image
comes from Debian packages (mmdebstrap), cached in REGISTRY_IMAGE_CACHE or ~/.cache/registry-image:
the first run makes it (about two minutes), later ones only build the Dockerfile (about a minute).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import pki  # noqa: F401  (a fixture)
from tests.e2e.test_docker import Docker, archives  # noqa: F401  (archives: a fixture)
from tests.e2e.test_docker import docker as docker  # the session's dockerd
from tests.e2e.test_podman import CONTAINERS_CONF
from tests.support.tools import ImageTool, free_port, require_tool

pytestmark = pytest.mark.clients

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "image" / "build"
TAG = "registry-test:image"


def build(tool_env: dict[str, str], builder: str, tag: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/image/build as an operator would, with the engine's environment and the machine's cache."""
    require_tool("mmdebstrap")
    env = {**os.environ, **tool_env, "REGISTRY_IMAGE_BUILDER": builder}
    env["HOME"] = os.environ.get("HOME", "/root")  # the base tarball's cache is the operator's
    result = subprocess.run([str(BUILD), tag], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, f"{builder}: {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def image(docker: Docker) -> str:
    build(docker.env, "docker", TAG)
    return TAG


class Container:
    """One `docker run -d` of the image on the host's network, listening on 127.0.0.1:PORT; or with
    `isolated`, with the image's own settings (every interface, port 5000) in an empty network namespace."""

    def __init__(self, engine: Docker, name: str, isolated: bool) -> None:
        self.docker, self.name, self.port, self.isolated = engine, name, free_port(), isolated

    def run(self, image: str, data: Path, mounts: tuple[str, ...], env: dict[str, str]) -> Container:
        if not self.isolated:
            env = {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{self.port}", **env}
        self.docker(
            "run", "-d", "--name", self.name, "--restart=always",
            "--network", "none" if self.isolated else "host",
            "--health-interval=1s", "--health-start-period=1s",  # the image's 30 s, shortened for the test
            "-v", f"{data}:/var/lib/registry", *mounts,
            *(f"--env={key}={value}" for key, value in env.items()),
            image,
        )  # fmt: skip
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.state()["Health"]["Status"]) != "healthy":
            state = self.state()
            assert state["Running"], f"the container stopped: {state}\n{self.logs()}"
            assert time.monotonic() < deadline, f"{status}: {state['Health']}\n{self.logs()}"
            time.sleep(0.2)

    def state(self) -> dict:
        return json.loads(self.docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self) -> str:
        result = self.docker("logs", self.name)
        return result.stdout + result.stderr

    def stop(self) -> float:
        """`docker stop` (SIGTERM, then SIGKILL after 10 s); return how long it took."""
        started = time.monotonic()
        self.docker("stop", self.name)
        return time.monotonic() - started

    def remove(self) -> None:
        self.docker("rm", "--force", self.name, check=False)


@pytest.fixture
def launch(docker: Docker, image: str) -> Iterator[Callable[..., Container]]:
    """Start a container of the image on a data folder and wait until its healthcheck passes; every one is
    removed after the test."""
    started: list[Container] = []

    def start(data: Path, isolated: bool = False, mounts: tuple[str, ...] = (), **env: str) -> Container:
        container = Container(docker, f"registry-test-{len(started)}-{free_port()}", isolated)
        started.append(container.run(image, data, mounts, env))
        container.wait_healthy()
        return container

    yield start
    for container in started:
        container.remove()


def root_owned_folder(tmp_path: Path) -> Path:
    data = tmp_path / "registry"
    data.mkdir()
    assert data.stat().st_uid == 0  # as Docker would create it for `-v /opt/data/registry:...`
    return data


def push_pull_round_trip(engine: Docker, archive: Path, host: str, repository: str) -> str:
    """Load, tag, push; remove every local name; pull back and run it. Returns the pulled image's id."""
    engine("load", "-i", str(archive))
    image_id = engine.inspect("local/busybox:1")["Id"]
    target = f"{host}/{repository}:1"
    engine("tag", "local/busybox:1", target)
    engine.push(target)
    engine("rmi", "--force", image_id)
    assert not engine.exists(image_id)
    engine("pull", target)
    assert engine.inspect(target)["Id"] == image_id
    assert engine("run", "--rm", "--network", "none", target, "echo", "hi").stdout == "hi\n"
    engine("rmi", "--force", image_id)
    return image_id


def test_seed_command_serves_anonymously_into_a_root_owned_bind_mount(
    docker: Docker, launch: Callable[..., Container], tmp_path: Path
) -> None:
    """The image's own settings (0.0.0.0:5000, no auth) in an empty network namespace, where every
    interface is loopback: it starts, says it serves anonymously, writes the bind mount, stops on time."""
    data = root_owned_folder(tmp_path)
    registry = launch(data, isolated=True)  # healthy: /readyz on 127.0.0.1:5000 inside the container
    logs = registry.logs()
    assert "serving 0.0.0.0:5000 without authentication: anyone who can reach it may push" in logs, logs
    # The server runs as `registry` (uid 999), and the bind mount became its own.
    top = docker("top", registry.name, "-o", "pid,uid,args").stdout.splitlines()[1:]
    assert top and all(line.split()[1] == "999" for line in top), top
    assert data.stat().st_uid == 999 and (data / "blobs").stat().st_uid == 999
    assert (data / "index.db").is_file()

    # docker stop: SIGTERM reaches the server (PID 1), which ends cleanly well before the 10 s SIGKILL.
    took = registry.stop()
    state = registry.state()
    assert took < 5 and state["ExitCode"] == 0, (took, state, registry.logs())
    assert "stopped" in registry.logs().splitlines()[-1]


def test_push_pull_through_the_container(
    docker: Docker,
    launch: Callable[..., Container],
    archives: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data = root_owned_folder(tmp_path)
    registry = launch(data)
    push_pull_round_trip(docker, archives["busybox"], f"127.0.0.1:{registry.port}", "team/busybox")
    catalog = httpx.get(f"http://127.0.0.1:{registry.port}/v2/_catalog", timeout=10)
    assert catalog.json() == {"repositories": ["team/busybox"]}
    assert registry.stop() < 5

    # The data outlived the container: a new one on the same folder serves the image.
    again = launch(data)
    tags = httpx.get(f"http://127.0.0.1:{again.port}/v2/team/busybox/tags/list", timeout=10)
    assert tags.json() == {"name": "team/busybox", "tags": ["1"]}


def test_https_with_tls_files_only_root_can_read(
    docker: Docker,
    launch: Callable[..., Container],
    archives: dict[str, Path],  # noqa: F811
    pki: Path,  # noqa: F811
    tmp_path: Path,
) -> None:

    # Root's alone: the key as cert init writes it, in a folder only root may enter.
    assert (pki / "server.key").stat().st_mode & 0o077 == 0 and pki.stat().st_mode & 0o077 == 0
    registry = launch(  # healthy: the healthcheck asks /readyz over HTTPS
        root_owned_folder(tmp_path),
        mounts=("-v", f"{pki}:/etc/registry/tls:ro"),
        REGISTRY_HTTP_TLS_CERTIFICATE="/etc/registry/tls/server.crt",
        REGISTRY_HTTP_TLS_KEY="/etc/registry/tls/server.key",
    )

    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    version = httpx.get(f"https://127.0.0.1:{registry.port}/v2/", verify=context, timeout=10)
    assert version.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{registry.port}/v2/", timeout=10)  # TLS only

    # Docker treats 127.0.0.0/8 as insecure: it speaks HTTPS first and does not check the certificate.
    push_pull_round_trip(docker, archives["busybox"], f"127.0.0.1:{registry.port}", "secure/busybox")
    catalog = httpx.get(f"https://127.0.0.1:{registry.port}/v2/_catalog", verify=context, timeout=10)
    assert catalog.json() == {"repositories": ["secure/busybox"]}
    assert registry.stop() < 5


def test_buildah_builds_the_same_dockerfile(tmp_path_factory: pytest.TempPathFactory) -> None:
    # podman's containers.conf (runc, no cgroups manager, no network), and overlay storage in a private
    # root: vfs would copy the whole root filesystem at each step, a minute more.
    root = tmp_path_factory.mktemp("buildah")
    (root / "containers.conf").write_text(CONTAINERS_CONF.format(root=root))
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    for sub in ("tmp", "xdg"):
        (root / sub).mkdir()
    env = {
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
        "TMPDIR": str(root / "tmp"),
        "XDG_RUNTIME_DIR": str(root / "xdg"),
    }
    buildah = ImageTool(require_tool("buildah")["buildah"], root, env)
    build(buildah.env, "buildah", "registry-test:buildah")
    config = json.loads(buildah("inspect", "--type", "image", "registry-test:buildah").stdout)
    docker_config = config["Docker"]["config"]
    assert docker_config["Entrypoint"] == ["entrypoint"]
    assert docker_config["Cmd"] == ["registry", "serve"]
    assert docker_config["Healthcheck"]["Test"] == ["CMD", "healthcheck"]
    assert "REGISTRY_AUTH_ALLOW_ANONYMOUS_REMOTE=true" in docker_config["Env"]
    # Leave no overlay mounts behind for the temporary folder's removal.
    buildah("rm", "--all", timeout=300)
