"""Fixtures of the client tests: the `registry` CLI run in-process against a private store and auth file,
skopeo to put images into a real registry, and a loader that fills a store from an OCI layout directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.cli import main
from registry.client.store import ImageStore, LocalImage
from tests.support.images import build_busybox_layout, build_multiarch_layout, layout_descriptor, read_blob
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


CLI = Callable[..., Outcome]


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def cli(
    tmp_path: Path, store_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CLI:
    """`cli("pull", REF)` runs `registry pull REF` in this process with a store, auth file and certs.d of
    the test."""
    monkeypatch.setenv("REGISTRY_CLIENT_ROOT", str(store_root))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("REGISTRY_CERTS_DIRS", str(tmp_path / "certs.d"))  # never the machine's
    monkeypatch.setenv("REGISTRY_CONTAINERS_ROOT", str(tmp_path / "containers"))

    def run(*argv: str) -> Outcome:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return run


@pytest.fixture
def store(store_root: Path) -> ImageStore:
    return ImageStore(store_root)


def skopeo_push(layout: Path, tag: str, destination: str, *extra: str) -> None:
    """Copy `layout:tag` to `docker://destination` with skopeo, digests preserved."""
    skopeo = require_tool("skopeo")["skopeo"]
    copied = subprocess.run(
        [
            skopeo, "--insecure-policy", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false",
            *extra, f"oci:{layout}:{tag}", f"docker://{destination}",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert copied.returncode == 0, f"skopeo copy to {destination} failed: {copied.stderr}"


@dataclass(frozen=True)
class Pushed:
    """An image a real registry holds, and the layout it came from."""

    reference: str
    layout: Path
    manifest_digest: str

    def manifest(self) -> dict:
        return json.loads(read_blob(self.layout, self.manifest_digest))


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout", "1", {"/etc/motd": "hello\n"})


@pytest.fixture(scope="session")
def pushed_busybox(server: RegistryProcess, busybox_layout: Path) -> Pushed:
    reference = f"{server.host}/client/busybox:1"
    skopeo_push(busybox_layout, "1", reference)
    return Pushed(reference, busybox_layout, layout_descriptor(busybox_layout, "1")["digest"])


@pytest.fixture(scope="session")
def pushed_multiarch(server: RegistryProcess, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    layout = build_multiarch_layout(tmp_path_factory.mktemp("multiarch") / "layout", "multi")
    reference = f"{server.host}/client/multi:1"
    skopeo_push(layout, "multi", reference, "--all")
    return Pushed(reference, layout, layout_descriptor(layout, "multi")["digest"])


def add_layout(store: ImageStore, layout: Path, tag: str, reference: str | None) -> LocalImage:
    """Put the image `tag` of an OCI layout into `store` under `reference`, without any registry."""
    manifest_digest = layout_descriptor(layout, tag)["digest"]
    manifest = read_blob(layout, manifest_digest)
    document = json.loads(manifest)
    layers = {}
    for layer in document["layers"]:
        copy = store.temporary_file()
        shutil.copyfile(layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:"), copy)
        layers[layer["digest"]] = copy
    return store.add_image(reference, manifest, read_blob(layout, document["config"]["digest"]), layers)
