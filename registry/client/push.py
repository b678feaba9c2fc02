"""`registry push`: upload an image's blobs the registry lacks, then its manifest.

For each blob, cheapest first: `HEAD` (already there), a cross-repository mount from a repository of the
same registry the store knows holds it (pulled from or pushed to earlier), then an upload: one request
for a small blob, `PATCH` chunks for a big one, so a large layer never sits in memory whole and each
request stays short. Blobs go concurrently; the manifest goes last, once everything it references is in.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from registry.client.distribution import RegistryClient
from registry.client.errors import RegistryClientError
from registry.client.progress import Progress, bar
from registry.client.pull import short
from registry.client.reference import Reference
from registry.client.store import ImageStore, LocalImage
from registry.client.tasks import run_all
from registry.types import OCI_MANIFEST

CHUNK_SIZE: Final = 16 << 20
CONCURRENCY: Final = 3


@dataclass
class PushResult:
    reference: str
    digest: str
    size: int
    actions: dict[str, str] = field(default_factory=dict)  # blob digest -> "exists", "mounted" or "pushed"


class Pusher:
    def __init__(
        self,
        store: ImageStore,
        client: RegistryClient,
        progress: Progress,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.store = store
        self.client = client
        self.progress = progress
        self.chunk_size = chunk_size
        self.concurrency = concurrency

    async def push(self, image: LocalImage, target: Reference) -> PushResult:
        self.progress.message(f"The push refers to repository [{target.familiar_repository}]")
        manifest = self.store.read_blob(image.manifest_digest)
        result = PushResult(str(target), image.manifest_digest, len(manifest))
        layers = {layer.digest: layer.path for layer in reversed(image.layers)}
        for digest in layers:
            self.progress.update(short(digest), "Preparing")

        async def push_one(digest: str, path: Path, shown: bool) -> None:
            result.actions[digest] = await self.push_blob(target, digest, path, shown)

        # Docker shows layers only; the config is a blob like any other, without a status line.
        jobs = [push_one(digest, path, True) for digest, path in layers.items()]
        jobs.append(push_one(image.config_digest, self.store.blob_path(image.config_digest), False))
        await run_all(jobs, self.concurrency)

        media_type = json.loads(manifest).get("mediaType", OCI_MANIFEST)
        announced = await self.client.put_manifest(
            target.path, target.manifest_reference, manifest, media_type
        )
        if announced and announced != image.manifest_digest:
            raise RegistryClientError(
                f"the registry stored the manifest as {announced}, not {image.manifest_digest}"
            )
        self.progress.message(
            f"{target.manifest_reference}: digest: {image.manifest_digest} size: {len(manifest)}"
        )
        return result

    async def push_blob(self, target: Reference, digest: str, path: Path, shown: bool = True) -> str:
        """Make `digest` present in the target repository; returns how: "exists", "mounted" or "pushed"."""
        key = short(digest)
        if await self.client.blob_exists(target.path, digest):
            action, status = "exists", "Layer already exists"
        else:
            source = self._mount_source(target, digest)
            location = await self.client.mount_or_start(target.path, digest, source)
            if location is None:
                action, status = "mounted", f"Mounted from {source}"
            else:
                await self._upload(location, digest, path, key if shown else None)
                action, status = "pushed", "Pushed"
        self.store.add_sources(target.repository, [digest])
        if shown:
            self.progress.update(key, status, final=True)
        return action

    def _mount_source(self, target: Reference, digest: str) -> str | None:
        """A repository on the target's registry, other than the target, that holds `digest`."""
        prefix = target.domain + "/"
        for repository in self.store.sources(digest):
            if repository.startswith(prefix) and repository != target.repository:
                return repository.removeprefix(prefix)
        return None

    async def _upload(self, location: str, digest: str, path: Path, key: str | None) -> None:
        stream = await asyncio.to_thread(path.open, "rb")
        try:
            size = os.fstat(stream.fileno()).st_size
            if size <= self.chunk_size:
                await self.client.put_upload(location, digest, await asyncio.to_thread(stream.read))
                return
            offset = 0
            while chunk := await asyncio.to_thread(stream.read, self.chunk_size):
                location = await self.client.patch_upload(location, chunk, offset)
                offset += len(chunk)
                if key:
                    self.progress.update(key, "Pushing " + bar(offset, size))
        finally:
            stream.close()
        await self.client.put_upload(location, digest)
