"""One scrub pass: every blob and manifest re-hashed against its digest, the failures taken out of service.

"Out of service" means that nothing serves the bad content any more and that a push of the right bytes
restores it, which needs more than hiding it:

- A corrupt blob's bytes are moved to the store's quarantine (kept for inspection, and no longer
  served), then the index forgets the blob (its links and row, in one transaction): a client HEADs a
  blob before pushing it and skips the upload when the registry answers 200. A push in between
  replaces the stored bytes with verified ones, since a store never trusts what sits at a digest.
- A blob the index claims but the store lacks is forgotten the same way.
- A blob in the store that the index does not know is checked too, and quarantined when corrupt.
- A manifest's bytes live in the index. One whose bytes do not hash to its digest is deleted from its
  repository, tags included (the report names them, to push again): kept, it would be served under a
  digest its body does not match, and a push of the right bytes would change nothing, since a
  manifest already recorded is not rewritten.

Beside live pushes (the background scrub), a push of a blob landing between its quarantine and the
index forgetting it is forgotten with it: the client's manifest PUT then fails with
MANIFEST_BLOB_UNKNOWN and its retry uploads the blob again. Nothing wrong is ever served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from registry.index import MetadataIndex, StoredManifest
from registry.storage import BlobStore
from registry.storage.verify import Pace, rehash
from registry.types import Digest


@dataclass(frozen=True, slots=True)
class Finding:
    """One object that does not match its digest, and what was done about it."""

    problem: str  # "corrupt blob", "missing blob" or "corrupt manifest"
    digest: str
    where: str
    actual: str
    action: str

    def __str__(self) -> str:
        head = f"{self.problem} {self.digest} ({self.where})"
        return f"{head}: expected {self.digest}, {self.actual}; {self.action}"


@dataclass
class Scrubbed:
    blobs: int = 0
    bytes: int = 0
    manifests: int = 0
    findings: list[Finding] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"scrubbed {self.blobs} blob(s) ({self.bytes} bytes) and {self.manifests} manifest(s): "
            f"{len(self.findings)} problem(s)"
        )


async def scrub(
    index: MetadataIndex,
    store: BlobStore,
    *,
    repository: str | None = None,
    dry_run: bool = False,
    rate: int = 0,
    report: Callable[[Finding], None] = lambda finding: None,
) -> Scrubbed:
    """Check every blob and manifest (or those of `repository`), reading at most `rate` bytes/s.

    Each finding is passed to `report` as soon as it is made; with `dry_run` nothing is changed.
    """
    run = _Pass(index, store, dry_run, Pace(rate), report)
    seen: set[str] = set()
    if repository is None:
        async for digest in store.list_blobs():
            seen.add(str(digest))
            await run.blob(digest)
    for text in await index.blob_digests(repository):
        if text not in seen:
            await run.blob(Digest.parse(text))
    async for manifest in index.stored_manifests(repository):
        await run.manifest(manifest)
    return run.scrubbed


class _Pass:
    def __init__(
        self,
        index: MetadataIndex,
        store: BlobStore,
        dry_run: bool,
        pace: Pace,
        report: Callable[[Finding], None],
    ) -> None:
        self.index = index
        self.store = store
        self.dry_run = dry_run
        self.pace = pace
        self.report = report
        self.scrubbed = Scrubbed()

    def _found(self, finding: Finding) -> None:
        self.scrubbed.findings.append(finding)
        self.report(finding)

    async def blob(self, digest: Digest) -> None:
        stored = await rehash(self.store, digest, self.pace)
        self.scrubbed.blobs += 1
        if stored is None:
            # Gone since it was listed (collected) is fine; what the index still claims is not.
            if await self.index.any_blob_size(str(digest)) is None:
                return
            await self._take_out(digest, "missing blob", "actual: no bytes in the store", quarantine=False)
            return
        actual, size = stored
        self.scrubbed.bytes += size
        if actual != digest.hex:
            found = f"actual {digest.algorithm}:{actual} ({size} bytes)"
            await self._take_out(digest, "corrupt blob", found, quarantine=True)

    async def _take_out(self, digest: Digest, problem: str, actual: str, quarantine: bool) -> None:
        if self.dry_run:
            repositories = await self.index.blob_repositories(str(digest))
            action = (
                "would quarantine it and remove it from the index"
                if quarantine
                else "would remove it from the index"
            )
        else:
            moved = await self.store.quarantine(digest) if quarantine else None
            repositories = await self.index.drop_blob(str(digest))
            action = f"quarantined to {moved}, removed from the index" if moved else "removed from the index"
        where = "repositories: " + ", ".join(repositories) if repositories else "in no repository"
        self._found(Finding(problem, str(digest), where, actual, action))

    async def manifest(self, manifest: StoredManifest) -> None:
        self.scrubbed.manifests += 1
        await self.pace.spend(len(manifest.payload))
        digest = Digest.parse(manifest.digest)
        actual = Digest.of(manifest.payload, digest.algorithm)
        if actual == digest:
            return
        tags = await self.index.manifest_tags(manifest.repository, manifest.digest)
        if self.dry_run:
            action = "would delete it"
        else:
            await self.index.delete_manifest(manifest.repository, manifest.digest)
            action = "deleted, push it again"
        where = f"repository {manifest.repository}, tags: {', '.join(tags) or 'none'}"
        found = f"actual {actual} ({len(manifest.payload)} bytes)"
        self._found(Finding("corrupt manifest", manifest.digest, where, found, action))
