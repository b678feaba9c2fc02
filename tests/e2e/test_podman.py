"""podman against a real `registry serve`: push an image from local storage, remove it, pull it back
(same digest, same image) and run it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import build_busybox_layout, host_arch
from tests.support.server import RegistryProcess
from tests.support.tools import ImageTool, require_tool

pytestmark = pytest.mark.clients

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

# The settings podman needs on these machines (see /work/shared/TESTING.md): crun fails here (hybrid
# cgroups), there is no systemd/journald to talk to, no CNI/netavark networking, and no CAP_SYS_RESOURCE
# to raise the default ulimits. No `static_dir`: with one, `run --rm` waits 20 s for a conmon timeout
# (conmon's exit command, `podman container cleanup`, is apparently not told about it and looks in the
# default database), so the libpod database stays in its default place under graphroot.
CONTAINERS_CONF = """\
[containers]
netns = "none"
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
tmp_dir = "{root}/tmp"
volume_path = "{root}/volumes"
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{root}/graph"
runroot = "{root}/run"
"""


class Podman(ImageTool):
    def __init__(self, binary: str, root: Path) -> None:
        (root / "containers.conf").write_text(CONTAINERS_CONF.format(root=root))
        (root / "storage.conf").write_text(STORAGE_CONF.format(root=root))
        super().__init__(
            binary,
            root,
            {
                "CONTAINERS_CONF": str(root / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
                "REGISTRY_AUTH_FILE": str(root / "auth.json"),
                "XDG_RUNTIME_DIR": str(root / "xdg"),
                "TMPDIR": str(root / "tmp"),
            },
        )
        (root / "auth.json").write_text(
            '{"auths": {}}'
        )  # podman refuses a REGISTRY_AUTH_FILE that is missing
        for sub in ("tmp", "xdg"):
            (root / sub).mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    tools = require_tool("podman", "runc")
    root = Path(tempfile.mkdtemp(prefix="e2e-podman-"))
    instance = Podman(tools["podman"], root)
    yield instance
    # Not `podman system reset`: that also touches machine-wide state (networks). vfs mounts nothing and
    # `run --rm` removed the containers, so the folder can simply go.
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(
        tmp_path_factory.mktemp("podman-image") / "layout",
        tag="1",
        extra_files={"/etc/motd": "from podman\n"},
    )


def test_push_pull_run(
    server: RegistryProcess, client: httpx.Client, repo: str, busybox: Path, podman: Podman, tmp_path: Path
) -> None:
    local = f"localhost/e2e/podman-{server.port}:1"
    remote = f"{server.host}/{repo}:1"

    image_id = podman("pull", "--quiet", f"oci:{busybox}:1").stdout.strip().splitlines()[-1]
    podman("tag", image_id, local)
    loaded = podman.inspect(local)
    assert loaded["Architecture"] == host_arch()

    digest_file = tmp_path / "digest"
    podman("push", "--tls-verify=false", "--digestfile", str(digest_file), local, f"docker://{remote}")
    pushed = digest_file.read_text().strip()
    assert pushed.startswith("sha256:")

    response = client.get(f"/v2/{repo}/manifests/1", headers={"Accept": ACCEPT})
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Content-Digest"] == pushed
    manifest = response.json()
    assert manifest["config"]["digest"] == "sha256:" + loaded["Id"]
    for layer in manifest["layers"]:
        head = client.head(f"/v2/{repo}/blobs/{layer['digest']}")
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == layer["size"]

    # Remove the image itself (all its names), so the pull below must fetch everything from the registry.
    podman("rmi", "--force", image_id)
    assert podman("image", "exists", image_id, check=False).returncode != 0

    podman("pull", "--tls-verify=false", remote)
    pulled = podman.inspect(remote)
    assert pulled["Digest"] == pushed
    assert pulled["Id"] == loaded["Id"]  # the same config, so the same image
    assert f"{server.host}/{repo}@{pushed}" in pulled["RepoDigests"]

    run = podman("run", "--rm", remote, "sh", "-c", "echo hello from $(cat /etc/motd)")
    assert run.stdout.strip() == "hello from from podman"

    # Pulling by digest gives the same image again.
    by_digest = podman("pull", "--tls-verify=false", f"{server.host}/{repo}@{pushed}").stdout.strip()
    assert by_digest.splitlines()[-1] == loaded["Id"]
    podman("rmi", "--force", loaded["Id"])
