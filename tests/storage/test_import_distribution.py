"""`registry import-distribution`: a real Distribution (Debian's docker-registry) is given images by
skopeo and stopped; its folder is imported (into the filesystem store, and into S3); then every tag is
pulled from this registry by skopeo, byte for byte what Distribution served. A second run imports
nothing; an import that could not finish (a blob's data missing) completes when run again."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from registry.importer.layout import V2
from tests.client.conftest import skopeo_push
from tests.storage.conftest import new_bucket, s3_environment
from tests.support.images import build_busybox_layout, build_multiarch_layout
from tests.support.server import RegistryProcess
from tests.support.tools import free_port, require_tool, run_registry

# repository:tag -> the tag of the layout it is pushed from ("multi": a multi-platform index)
IMAGES = {"team/busybox:1": "1", "team/busybox:latest": "1", "library/multi:v1": "multi", "solo:2": "1"}


def _distribution_tags(root: Path) -> dict[str, str]:
    """What Distribution's folder says each tag points at."""
    found = {}
    for link in (root / V2 / "repositories").rglob("_manifests/tags/*/current/link"):
        repo = link.parents[4].relative_to(root / V2 / "repositories").as_posix()
        found[f"{repo}:{link.parents[1].name}"] = link.read_text().strip()
    return found


@pytest.fixture(scope="module")
def distribution_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Distribution's storage folder after skopeo pushed IMAGES to it, the server stopped."""
    binary = require_tool("docker-registry")["docker-registry"]
    work = tmp_path_factory.mktemp("distribution")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        f"version: 0.1\nhttp: {{addr: '127.0.0.1:{port}'}}\n"
        f"storage: {{filesystem: {{rootdirectory: '{work / 'root'}'}}, delete: {{enabled: true}}}}\n"
    )
    with open(work / "log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (work / "log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        busybox = build_busybox_layout(work / "busybox", "1", {"/etc/motd": "imported\n"})
        multi = build_multiarch_layout(work / "multi", "multi")
        for reference, tag in IMAGES.items():
            layout, extra = (multi, ("--all",)) if tag == "multi" else (busybox, ())
            skopeo_push(layout, tag, f"127.0.0.1:{port}/{reference}", *extra)
    finally:
        process.terminate()
        process.wait(30)
    return work / "root"


def _served_digest(server: RegistryProcess, reference: str) -> str:
    skopeo = require_tool("skopeo")["skopeo"]
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{server.host}/{reference}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _pull_everything(server: RegistryProcess, folder: Path, tmp_path: Path) -> None:
    """Every tag: the same manifest digest as in Distribution's folder, and skopeo can copy it all."""
    skopeo = require_tool("skopeo")["skopeo"]
    tags = _distribution_tags(folder)
    assert set(tags) == set(IMAGES)
    for reference, digest in tags.items():
        assert _served_digest(server, reference) == digest, reference
        copied = subprocess.run(
            [
                skopeo, "--insecure-policy", "copy", "--all", "--src-tls-verify=false",
                f"docker://{server.host}/{reference}",
                f"oci:{tmp_path / 'pulled'}:{reference.replace('/', '-')}",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        assert copied.returncode == 0, copied.stderr


def _import(folder: Path, env: dict[str, str], *settings: str) -> subprocess.CompletedProcess[str]:
    return run_registry("import-distribution", str(folder), *settings, env=env)


def test_import_into_the_filesystem_store(distribution_folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _import(distribution_folder, {}, "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    assert "imported" in first.stdout and "4 tag(s) in 3 repositories" in first.stdout, first.stdout
    again = _import(distribution_folder, {}, "--data-dir", str(data))
    assert again.returncode == 0 and "nothing new to import" in again.stdout, again.stdout + again.stderr
    server = RegistryProcess(data).start()
    try:
        _pull_everything(server, distribution_folder, tmp_path)
    finally:
        server.stop()


def test_import_into_s3(distribution_folder: Path, moto_endpoint: str, tmp_path: Path) -> None:
    env = s3_environment(moto_endpoint, new_bucket(moto_endpoint))
    data = tmp_path / "data"
    done = _import(distribution_folder, env, "--data-dir", str(data))
    assert done.returncode == 0 and "4 tag(s)" in done.stdout, done.stdout + done.stderr
    server = RegistryProcess(data, env=env).start()
    try:
        _pull_everything(server, distribution_folder, tmp_path)
    finally:
        server.stop()


def test_an_interrupted_import_completes_when_run_again(distribution_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(distribution_folder, folder)
    config_link = next((folder / V2 / "repositories" / "solo" / "_layers").rglob("link"))
    digest = config_link.read_text().strip().removeprefix("sha256:")
    data_file = folder / V2 / "blobs" / "sha256" / digest[:2] / digest / "data"
    kept = data_file.read_bytes()
    data_file.unlink()
    data = tmp_path / "data"
    partial = _import(folder, {}, "--data-dir", str(data))
    assert partial.returncode == 1
    assert f"solo: blob sha256:{digest} is linked but its data is missing" in partial.stderr
    data_file.write_bytes(kept)
    rest = _import(folder, {}, "--data-dir", str(data))
    assert rest.returncode == 0, rest.stderr
    assert "imported 1 blob(s)" in rest.stdout, rest.stdout  # the rest, and only the rest
    server = RegistryProcess(data).start()
    try:
        _pull_everything(server, folder, tmp_path)
    finally:
        server.stop()


def test_serve_on_distribution_data_says_how_to_import(distribution_folder: Path, tmp_path: Path) -> None:
    server = RegistryProcess(
        tmp_path / "data", env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(distribution_folder)}
    ).start()
    server.stop()
    hints = [line for line in server.log.read_text().splitlines() if "import-distribution" in line]
    assert len(hints) == 1 and str(distribution_folder) in hints[0], server.log.read_text()


def test_a_folder_without_distribution_data_is_one_line(tmp_path: Path) -> None:
    result = _import(tmp_path, {}, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "docker/registry/v2" in result.stderr


def test_an_import_beside_a_collector_keeps_the_bytes_it_links(
    distribution_folder: Path, tmp_path: Path
) -> None:
    """Every blob of the import was pushed here before and deleted: the bytes are still in the store,
    due for deletion once the collector forgets the old records. A collection runs while the import,
    having found the first blob's bytes here, is about to link them (held at the LINK pause point): it
    deletes every other blob's bytes, which the import then copies in, but not those the import holds.
    The import ends with every blob whole."""
    from registry.app import Registry
    from registry.cli.prepare import prepare
    from registry.config import Settings
    from registry.importer.layout import v2_root
    from registry.importer.run import import_distribution
    from registry.lifecycle.collector import Collector
    from registry.lifecycle.hooks import LINK
    from registry.types import Digest
    from tests.lifecycle.conftest import Barrier, body

    root = v2_root(distribution_folder)
    assert root is not None
    blobs = {Digest.parse("sha256:" + path.parent.name): path for path in root.glob("blobs/sha256/*/*/data")}
    settings = Settings().with_overrides({"data_dir": tmp_path / "data"})
    prepare(settings, create=True)
    registry = Registry.build(settings)
    held = Barrier(LINK)

    async def scenario() -> None:
        await registry.index.open()
        try:
            for digest, path in blobs.items():
                await registry.blobs.upload("before/import", digest, body(path.read_bytes()))
                await registry.blobs.delete("before/import", digest)
            registry.blobs.pause = held
            importing = asyncio.create_task(import_distribution(registry, root, lambda line: None))
            await held.reached.wait()
            first = Digest.parse(held.seen[-1].split()[1])
            collected = await Collector(registry.index, registry.store, timedelta(0), False).run()
            assert collected is not None and (collected.blobs, collected.deleted) == (
                len(blobs),
                len(blobs) - 1,
            )
            assert await registry.store.stat(first) == blobs[first].stat().st_size
            held.released.set()
            done = await importing
            assert not done.problems, done.problems
            # Every layer and config the import linked (the manifests it took went to the index).
            linked = {
                Digest.parse("sha256:" + link.parent.name)
                for link in root.glob("repositories/**/_layers/sha256/*/link")
            }
            assert linked and first in linked
            for digest in linked:
                assert await registry.store.stat(digest) == blobs[digest].stat().st_size, digest
        finally:
            await registry.index.close()

    asyncio.run(scenario())
