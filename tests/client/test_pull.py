"""`registry pull` from a real `registry serve` holding images skopeo pushed: bit-exact content, skipped
layers, platform choice, resumed downloads (a partial file left in staging, a connection dropped mid-layer),
refused corrupt content, and the transport rules for a registry that is not on a loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pty
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.client.distribution import RegistryClient
from registry.client.progress import Progress
from registry.client.pull import ContentMismatch, Puller, PullResult
from registry.client.reference import parse
from registry.client.store import ImageStore
from registry.storage.content import SMALL_BLOB
from tests.client.conftest import CLI, Pushed, skopeo_push
from tests.support.images import build_busybox_layout, foreign_arch, host_arch, read_blob
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.clients


def pull(store: ImageStore, reference: str) -> PullResult:
    """The puller itself, in this process, for what the CLI does not print (bytes transferred)."""
    ref = parse(reference)

    async def run() -> PullResult:
        async with RegistryClient(ref.api_host) as client:
            return await Puller(store, client, Progress(io.StringIO())).pull(ref)

    return asyncio.run(run())


def test_pull_is_bit_exact_listed_and_skips_what_it_has(
    cli: CLI, store: ImageStore, pushed_busybox: Pushed
) -> None:
    first = cli("pull", pushed_busybox.reference)
    assert first.code == 0, first.err
    manifest = pushed_busybox.manifest()
    layers = [layer["digest"] for layer in manifest["layers"]]
    for digest in layers:
        assert f"{digest[7:19]}: Pull complete" in first.out
    assert f"Digest: {pushed_busybox.manifest_digest}" in first.out
    assert f"Status: Downloaded newer image for {pushed_busybox.reference}" in first.out
    assert first.out.splitlines()[-1] == pushed_busybox.reference

    image = store.image(pushed_busybox.reference)
    assert image.manifest_digest == pushed_busybox.manifest_digest
    for digest in [pushed_busybox.manifest_digest, manifest["config"]["digest"], *layers]:
        assert store.blob_path(digest).read_bytes() == read_blob(pushed_busybox.layout, digest)

    repository, tag = pushed_busybox.reference.rsplit(":", 1)
    row = cli("images").out.splitlines()[1].split()
    assert row[:3] == [repository, tag, image.id]

    again = cli("pull", pushed_busybox.reference)
    assert again.code == 0
    for digest in layers:
        assert f"{digest[7:19]}: Already exists" in again.out
    assert "Pull complete" not in again.out
    assert f"Status: Image is up to date for {pushed_busybox.reference}" in again.out
    assert pull(store, pushed_busybox.reference).transferred == 0


def test_pull_by_digest_and_unknown_images(cli: CLI, store: ImageStore, pushed_busybox: Pushed) -> None:
    repository = pushed_busybox.reference.rsplit(":", 1)[0]
    by_digest = f"{repository}@{pushed_busybox.manifest_digest}"
    assert cli("pull", by_digest).code == 0
    row = cli("images", "--digests").out.splitlines()[1].split()
    assert row[:3] == [repository, "<none>", pushed_busybox.manifest_digest]
    assert store.image(by_digest).manifest_digest == pushed_busybox.manifest_digest

    missing = cli("pull", f"{repository}:nope")
    assert missing.code == 1
    assert "manifest unknown" in missing.err
    absent = "sha256:" + "0" * 64
    missing_digest = cli("pull", f"{repository}@{absent}")
    assert missing_digest.code == 1
    assert f"client/busybox@{absent}" in missing_digest.err, missing_digest.err


def test_platform_is_chosen_from_an_index(cli: CLI, store: ImageStore, pushed_multiarch: Pushed) -> None:
    assert cli("pull", pushed_multiarch.reference).code == 0
    assert store.image(pushed_multiarch.reference).config["architecture"] == host_arch()

    foreign = cli("pull", "--platform", f"linux/{foreign_arch()}", pushed_multiarch.reference)
    assert foreign.code == 0, foreign.err
    assert f"Digest: {pushed_multiarch.manifest_digest}" in foreign.out  # the index's, as Docker prints
    assert store.image(pushed_multiarch.reference).config["architecture"] == foreign_arch()

    absent = cli("pull", "--platform", "linux/mips64le", pushed_multiarch.reference)
    assert absent.code != 0
    assert "no matching manifest for linux/mips64le" in absent.err


def test_a_partial_download_in_staging_is_resumed(store: ImageStore, pushed_busybox: Pushed) -> None:
    layers = pushed_busybox.manifest()["layers"]
    big = max(layers, key=lambda layer: layer["size"])
    data = read_blob(pushed_busybox.layout, big["digest"])
    partial = store.staging_path(big["digest"])
    partial.write_bytes(data[: len(data) // 2])

    result = pull(store, pushed_busybox.reference)
    assert result.transferred == sum(layer["size"] for layer in layers) - len(data) // 2
    assert store.blob_path(big["digest"]).read_bytes() == data
    assert not partial.exists()


def test_a_corrupt_partial_download_is_refused_then_fetched_again(
    store: ImageStore, pushed_busybox: Pushed
) -> None:
    big = max(pushed_busybox.manifest()["layers"], key=lambda layer: layer["size"])
    partial = store.staging_path(big["digest"])
    partial.write_bytes(b"\0" * 1000)
    with pytest.raises(ContentMismatch, match="layer digest mismatch"):
        pull(store, pushed_busybox.reference)
    assert not partial.exists() and not store.has_blob(big["digest"])
    assert store.entries() == []
    pull(store, pushed_busybox.reference)
    assert store.blob_path(big["digest"]).read_bytes() == read_blob(pushed_busybox.layout, big["digest"])


class CuttingProxy:
    """A loopback TCP proxy that, once, drops a connection after relaying `cut_after` bytes of response."""

    def __init__(self, target: int, cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._relay, args=(downstream, upstream, False), daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, downstream, True), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, responses: bool) -> None:
        relayed = 0
        try:
            while data := source.recv(1 << 16):
                if responses and not self.cuts and relayed + len(data) > self.cut_after:
                    self.cuts += 1
                    sink.sendall(data[: self.cut_after - relayed])
                    break
                sink.sendall(data)
                relayed += len(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def cutting_proxy(server: RegistryProcess) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(server.port, cut_after=300_000)
    yield proxy
    proxy.close()


def test_a_dropped_connection_resumes_with_a_range_request(
    store: ImageStore, pushed_busybox: Pushed, cutting_proxy: CuttingProxy
) -> None:
    path = pushed_busybox.reference.split("/", 1)[1]
    result = pull(store, f"127.0.0.1:{cutting_proxy.port}/{path}")
    assert cutting_proxy.cuts == 1
    layers = pushed_busybox.manifest()["layers"]
    # Every byte crossed the network once: what arrived before the cut was kept, not fetched again.
    assert result.transferred == sum(layer["size"] for layer in layers)
    for layer in layers:
        assert store.blob_path(layer["digest"]).read_bytes() == read_blob(
            pushed_busybox.layout, layer["digest"]
        )


def test_content_that_does_not_match_its_digest_is_refused(
    cli: CLI, store: ImageStore, make_server: type, tmp_path: Path
) -> None:
    registry: RegistryProcess = make_server()
    # A layer over SMALL_BLOB: the registry sends such a blob's file unread, so what refuses the rotten
    # bytes is the client's own check. (A smaller blob the registry verifies itself, and refuses.)
    noise = {"/noise": os.urandom(SMALL_BLOB + 4096)}
    layout = build_busybox_layout(tmp_path / "layout", "1", extra_files=noise)
    skopeo_push(layout, "1", f"{registry.host}/bad/busybox:1")
    large_layer = next(
        path for path in (layout / "blobs" / "sha256").iterdir() if path.stat().st_size > SMALL_BLOB
    )
    (served,) = [path for path in registry.data_dir.rglob(large_layer.name) if path.is_file()]
    corrupt = bytearray(served.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    served.write_bytes(bytes(corrupt))

    refused = cli("pull", f"{registry.host}/bad/busybox:1")
    assert refused.code == 1
    assert "layer digest mismatch: expected sha256:" + large_layer.name in refused.err
    assert not store.has_blob("sha256:" + large_layer.name)
    assert store.entries() == []
    # Nothing of the rotten layer is kept to resume from (the busybox layer's download, cut short
    # when the pull failed, may be).
    assert not store.staging_path("sha256:" + large_layer.name).exists()


def test_registries_off_loopback_need_tls_unless_insecure(
    cli: CLI, store: ImageStore, pushed_busybox: Pushed
) -> None:
    by_name = "localhost:" + pushed_busybox.reference.split(":", 1)[1]  # the same plain-HTTP registry
    refused = cli("pull", by_name)
    assert refused.code == 1
    assert "cannot reach registry localhost:" in refused.err and "--insecure" in refused.err
    allowed = cli("pull", "--insecure", by_name)
    assert allowed.code == 0, allowed.err
    assert store.image(by_name).manifest_digest == pushed_busybox.manifest_digest


def test_a_terminal_gets_per_layer_lines_redrawn_in_place(pushed_busybox: Pushed, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    env = {**os.environ, "REGISTRY_CLIENT_ROOT": str(tmp_path / "store")}
    command = [sys.executable, "-m", "registry", "pull", pushed_busybox.reference]
    process = subprocess.Popen(
        command, stdout=terminal, stderr=terminal, env=env, cwd=Path(__file__).parents[2]
    )
    os.close(terminal)
    output = b""
    with contextlib.suppress(OSError):  # EIO once the child has exited and closed its end
        while chunk := os.read(controller, 65536):
            output += chunk
    os.close(controller)
    assert process.wait(30) == 0, output
    text = output.decode()
    layers = [layer["digest"][7:19] for layer in pushed_busybox.manifest()["layers"]]
    for key in layers:
        assert f"{key}: Waiting" in text
        assert f"\r\x1b[2K{key}: Pull complete" in text  # the layer's own line, rewritten
    assert text.count("Pull complete") == len(layers)
