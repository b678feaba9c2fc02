"""`registry pull`: resolve a reference, pick a platform, download what is missing, store the image.

Layers download concurrently on one shared connection pool. Each goes to `staging/<hex>.partial`, hashed
while it streams; network reads (64 KiB) are gathered into 1 MiB pieces, hashed and written by a worker
thread while the next piece arrives: hashing and writing each read in the event loop costs about half the
throughput, and bigger pieces measured slower on loopback. A dropped connection is resumed with a Range
request from the last byte written, as is a partial file a crashed or interrupted `pull` left behind.
Nothing reaches `blobs/` before its digest and size are verified.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import httpx

from registry.client.distribution import Manifest, RegistryClient
from registry.client.errors import RegistryClientError
from registry.client.media import DOCKER_CONFIG, OCI_CONFIG
from registry.client.platforms import Platform, choose
from registry.client.progress import Progress, bar
from registry.client.reference import Reference
from registry.client.store import ImageStore, LocalImage
from registry.client.tasks import run_all
from registry.types import DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, IMAGE_TYPES, INDEX_TYPES
from registry.untrusted_json import JSONRejected, load

CONCURRENCY: Final = 3  # as Docker; on loopback more only adds contention
PIECE: Final = 1 << 20
ATTEMPTS: Final = 4
_IMAGE_CONFIGS: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})


class ContentMismatch(RegistryClientError):
    """The registry sent bytes that do not hash to the digest that names them."""


@dataclass
class PullResult:
    reference: str  # the normalized reference now naming the image
    digest: str  # what the reference resolved to (the index's digest for a multi-platform image)
    image: LocalImage
    updated: bool  # the reference names another image than before
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    transferred: int = 0  # blob bytes received from the network


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verified_digest(manifest: Manifest, expected: str | None) -> str:
    """The manifest's digest, after checking it against what we asked for and what the registry said."""
    actual = sha256(manifest.data)
    for claimed in (expected, manifest.digest):
        if claimed and claimed != actual:
            raise ContentMismatch(f"manifest digest mismatch: expected {claimed}, content hashes to {actual}")
    return actual


class _Sink:
    """A partial blob file and the running hash of its bytes, resumable from its current length."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.hasher = hashlib.sha256()
        mode = "r+b" if path.exists() and path.stat().st_size <= size else "w+b"
        self.file: BinaryIO = open(path, mode)  # noqa: SIM115 (closed by close(), spans awaits)
        self.offset = 0

    def rehash(self) -> None:
        """Hash the bytes an earlier attempt left, so the download continues after them."""
        while chunk := self.file.read(PIECE):
            self.hasher.update(chunk)
            self.offset += len(chunk)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        if self.offset + len(data) > self.size:
            raise ContentMismatch(f"the registry sent more than the {self.size} bytes of {self.path.stem}")
        self.hasher.update(data)
        self.file.write(data)
        self.offset += len(data)

    def close(self) -> None:
        self.file.close()


class Puller:
    def __init__(
        self,
        store: ImageStore,
        client: RegistryClient,
        progress: Progress,
        platform: Platform | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.store = store
        self.client = client
        self.progress = progress
        self.platform = platform or Platform.host()
        self.concurrency = concurrency
        self.transferred = 0

    async def pull(self, reference: Reference) -> PullResult:
        repository = reference.path
        top = await self.client.get_manifest(repository, reference.manifest_reference)
        digest = verified_digest(top, reference.digest)
        manifest, manifest_digest = top, digest
        media_type, document = manifest_document(top)
        if media_type in INDEX_TYPES:
            chosen = choose(document, self.platform)
            manifest = await self.client.get_manifest(repository, chosen["digest"])
            manifest_digest = verified_digest(manifest, chosen["digest"])
        document = _image_manifest(manifest)
        self.progress.message(f"{reference.tag or reference.digest}: Pulling from {reference.path}")
        name = str(reference)
        previous = next((e.digest for e in self.store.entries() if e.reference == name), None)
        with self.store.lease():
            config = await self._config(repository, document["config"])
            layers = list({layer["digest"]: layer for layer in document["layers"]}.values())
            missing = [layer for layer in layers if not self.store.has_blob(layer["digest"])]
            present = [layer["digest"] for layer in layers if layer not in missing]
            for layer in present:
                self.progress.update(short(layer), "Already exists", final=True)
            for layer in missing:
                self.progress.update(short(layer["digest"]), "Waiting")
            await run_all((self.fetch_blob(repository, layer) for layer in missing), self.concurrency)
            image = self.store.add_image(name, manifest.data, config)
            self.store.add_sources(
                reference.repository, [image.config_digest, *(lr.digest for lr in image.layers)]
            )
        return PullResult(
            reference=name,
            digest=digest,
            image=image,
            updated=previous != manifest_digest,
            downloaded=[layer["digest"] for layer in missing],
            present=present,
            transferred=self.transferred,
        )

    async def _config(self, repository: str, descriptor: dict[str, Any]) -> bytes:
        if descriptor.get("mediaType") not in _IMAGE_CONFIGS:
            raise RegistryClientError(f"not a container image: its config is {descriptor.get('mediaType')}")
        digest = descriptor["digest"]
        if self.store.has_blob(digest):
            return self.store.read_blob(digest)
        data = await self.client.get_blob(repository, digest)
        if sha256(data) != digest:
            raise ContentMismatch(
                f"config digest mismatch: expected {digest}, content hashes to {sha256(data)}"
            )
        return data

    async def fetch_blob(self, repository: str, descriptor: dict[str, Any]) -> None:
        """Download one blob into the store, resuming a partial file and retrying dropped connections."""
        digest, size, key = descriptor["digest"], descriptor["size"], short(descriptor["digest"])
        partial = self.store.staging_path(digest)
        sink = _Sink(partial, size)
        try:
            await asyncio.to_thread(sink.rehash)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    if sink.offset < size:
                        await self._download(repository, digest, sink, key)
                    break
                except httpx.TransportError as error:
                    if attempt == ATTEMPTS:
                        raise RegistryClientError(f"download of {digest} failed: {error!r}") from error
                    self.progress.update(key, f"Retrying ({error.__class__.__name__})")
                    await asyncio.sleep(0.2 * attempt)
        finally:
            sink.close()
        actual = "sha256:" + sink.hasher.hexdigest()
        if sink.offset != size or actual != digest:
            partial.unlink()
            raise ContentMismatch(
                f"layer digest mismatch: expected {digest} ({size} bytes), "
                f"received {actual} ({sink.offset} bytes)"
            )
        self.store.commit_blob(partial, digest, verified=True)
        self.progress.update(key, "Pull complete", final=True)

    async def _download(self, repository: str, digest: str, sink: _Sink, key: str) -> None:
        async with self.client.stream_blob(repository, digest, start=sink.offset) as response:
            if sink.offset and response.status_code != 206:
                sink.restart()  # the registry ignored the Range header and sends everything
            elif sink.offset and not response.headers.get("Content-Range", "").startswith(
                f"bytes {sink.offset}-"
            ):
                raise RegistryClientError(
                    f"asked for {digest} from byte {sink.offset}, the registry answered "
                    f"Content-Range {response.headers.get('Content-Range')!r}"
                )
            pieces: list[bytes] = []
            gathered = 0
            pending: asyncio.Future[None] | None = None
            try:
                async for chunk in response.aiter_raw():
                    pieces.append(chunk)
                    gathered += len(chunk)
                    self.transferred += len(chunk)
                    if gathered >= PIECE:
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(asyncio.to_thread(sink.write, b"".join(pieces)))
                        pieces, gathered = [], 0
                        self.progress.update(key, "Downloading " + bar(sink.offset + PIECE, sink.size))
            finally:
                # What arrived before a dropped connection is good: keep it, so a retry resumes after it.
                if pending is not None:
                    await pending
                if pieces:
                    await asyncio.to_thread(sink.write, b"".join(pieces))


def manifest_document(manifest: Manifest) -> tuple[str, dict[str, Any]]:
    """A pulled manifest's media type (its own field, else the response's) and its document.

    The bytes come from a registry, which may be hostile: anything but a JSON object is refused here.
    """
    try:
        document = load(manifest.data)
    except JSONRejected as error:
        raise RegistryClientError(f"the registry sent a manifest that is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise RegistryClientError("the registry sent a manifest that is not a JSON object")
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise RegistryClientError(f"the registry sent a manifest with the mediaType {declared!r}")
    return declared or manifest.media_type, document


def _image_manifest(manifest: Manifest) -> dict[str, Any]:
    media_type, document = manifest_document(manifest)
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise RegistryClientError("Docker schema 1 manifests are not supported (they are deprecated)")
    if media_type not in IMAGE_TYPES:
        raise RegistryClientError(f"unsupported manifest type {media_type!r}")
    return document
