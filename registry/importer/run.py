"""The import itself: Distribution's blobs into the store (each verified against its digest on the way,
by the store's `ingest`), its manifests into the index through the manifests service (parsed and checked
as a push is, bytes exact), then its tags. Whatever is already here is skipped, so an interrupted import
is resumed by running it again, and a second run finds nothing new."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.errors import RegistryError
from registry.importer.layout import Repository, blob_path, repositories
from registry.services.manifests import parse_manifest
from registry.types import Digest

if TYPE_CHECKING:
    from registry.app import Registry

CHUNK = 1024 * 1024


@dataclass
class Imported:
    """What one run did: counts of what was new, and one line for each thing it could not take."""

    repositories: int = 0
    blobs: int = 0
    bytes: int = 0
    manifests: int = 0
    tags: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.blobs or self.manifests or self.tags)

    def summary(self) -> str:
        if not self.anything:
            return f"nothing new to import ({self.repositories} repositories already here)"
        return (
            f"imported {self.blobs} blob(s) ({self.bytes} bytes), {self.manifests} manifest(s) and "
            f"{self.tags} tag(s) in {self.repositories} repositories"
        )


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(CHUNK):
            yield piece


async def _blob(registry: Registry, root: Path, repository: str, digest: Digest, done: Imported) -> bool:
    """The blob in the store (copied and verified unless already there) and linked to `repository`.

    A running registry's collector may be about to delete the digest's bytes (pushed once, then
    deleted): held first, they stay until the link, whether found here or copied in (the hold is
    taken again before the copy is published only if the copy outlasted half of it)."""
    hold = registry.blobs.publish_hold(digest)
    await hold()
    size = await registry.store.stat(digest)
    if size is None:
        source = blob_path(root, digest)
        if not source.is_file():
            done.problems.append(f"{repository}: blob {digest} is linked but its data is missing: skipped")
            return False
        try:
            size = await registry.store.ingest(_chunks(source), digest, hold)
        except RegistryError:
            done.problems.append(f"{repository}: blob {digest} does not match its digest: skipped")
            return False
        done.blobs += 1
        done.bytes += size
    await registry.blobs.adopt(repository, digest, size)
    return True


def _manifest_bytes(root: Path, digest: Digest) -> bytes | None:
    try:
        return blob_path(root, digest).read_bytes()
    except OSError:
        return None


async def _manifests(registry: Registry, root: Path, repo: Repository, done: Imported) -> None:
    """Every revision, untagged, children before the indexes that list them: a manifest whose children
    are not here yet waits for the next pass."""
    waiting: dict[Digest, bytes] = {}
    for digest in repo.revisions:
        if await registry.index.get_manifest(repo.name, str(digest)) is not None:
            continue
        body = _manifest_bytes(root, digest)
        if body is None:
            done.problems.append(f"{repo.name}: manifest {digest} is linked but its data is missing: skipped")
            continue
        waiting[digest] = body
    while waiting:
        progress = False
        last: dict[Digest, str] = {}
        for digest, body in list(waiting.items()):
            try:
                await registry.manifests.put(repo.name, parse_manifest(body, None, str(digest)))
            except RegistryError as error:
                last[digest] = f"{error.code.name}: {error.message} {json.dumps(error.detail)}"
                continue
            del waiting[digest]
            done.manifests += 1
            progress = True
        if not progress:
            for digest, reason in last.items():
                done.problems.append(f"{repo.name}: manifest {digest} refused ({reason}): skipped")
            return


async def _tags(registry: Registry, root: Path, repo: Repository, done: Imported) -> None:
    for tag, digest in repo.tags.items():
        current = await registry.index.get_manifest(repo.name, tag)
        if current is not None and current.digest == str(digest):
            continue
        body = _manifest_bytes(root, digest)
        if body is None:
            done.problems.append(f"{repo.name}:{tag} points at {digest}, whose data is missing: skipped")
            continue
        try:
            put = parse_manifest(body, None, tag)
            if put.record.digest == str(digest):
                await registry.manifests.put(repo.name, put)
        except RegistryError as error:
            done.problems.append(f"{repo.name}:{tag} refused ({error.message}): skipped")
            continue
        if put.record.digest != str(digest):
            done.problems.append(f"{repo.name}:{tag}: the data of {digest} does not match it: skipped")
            continue
        done.tags += 1


async def import_distribution(registry: Registry, root: Path, say: Callable[[str], None]) -> Imported:
    """Import every repository of the Distribution v2 folder `root` into `registry`."""
    done = Imported()
    for repo in repositories(root):
        done.repositories += 1
        before = (done.blobs, done.manifests, done.tags)
        for digest in repo.layers:
            await _blob(registry, root, repo.name, digest, done)
        await _manifests(registry, root, repo, done)
        await _tags(registry, root, repo, done)
        if (done.blobs, done.manifests, done.tags) != before:
            say(f"{repo.name}: {len(repo.tags)} tag(s), {len(repo.revisions)} manifest(s)")
    return done
