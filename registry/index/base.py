"""The metadata index contract: which repositories exist and what each may serve.

The index never touches blob bytes. Every method is one transaction, so a crash leaves either the
whole change or none of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    subject: str | None = None
    annotations: str | None = None
    # The manifest's bytes; left out where only its description is wanted (referrers).
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class ManifestPut:
    """A verified manifest and what it points at, ready to be recorded."""

    record: ManifestRecord
    blobs: Sequence[str] = field(default_factory=tuple)
    manifests: Sequence[str] = field(default_factory=tuple)
    # Pushed by tag, that one; pushed by digest, any `tag` query parameters, applied in the same transaction.
    tags: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as the index keeps it, for re-hashing its bytes against its digest."""

    repository: str
    digest: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Usage:
    """What the index holds, for the storage gauges: blobs known to it, their bytes (each blob once,
    however many repositories link it) and open upload sessions."""

    blobs: int
    blob_bytes: int
    uploads: int


class MissingReferences(Exception):
    def __init__(self, blobs: Sequence[str], manifests: Sequence[str]) -> None:
        super().__init__("manifest references unknown content")
        self.blobs = list(blobs)
        self.manifests = list(manifests)


class UploadBusy(Exception):
    """Another request holds the upload session's write claim."""

    def __init__(self, holder: str) -> None:
        super().__init__("the upload session is being written by another request")
        self.holder = holder


class MetadataIndex(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Raise unless the database answers now: the readiness probe's question."""
        ...

    async def usage(self) -> Usage:
        """Totals for the storage gauges: two aggregate queries, so callers cache the answer."""
        ...

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob linked into the repository, or None."""
        ...

    async def repositories_holding(self, digest: str, limit: int) -> list[str]:
        """Up to `limit` repositories a blob is linked into, in name order (a mount without `from`)."""
        ...

    async def any_blob_size(self, digest: str) -> int | None:
        """Size of a blob the index records anywhere (scrub tells a collected blob from a lost one)."""
        ...

    async def link_blob(self, repository: str, digest: str, size: int, upload_id: str | None = None) -> None:
        """Make a committed blob visible in a repository, closing the upload session that made it."""
        ...

    async def unlink_blob(self, repository: str, digest: str) -> bool: ...

    async def create_upload(self, upload_id: str, repository: str) -> None: ...

    async def upload_exists(self, upload_id: str, repository: str) -> bool: ...

    async def claim_upload(self, upload_id: str, repository: str, writer: str, lease: float) -> int | None:
        """Make `writer` the session's only writer for `lease` seconds and return the claim's generation.

        None when there is no such session in the repository; raises UploadBusy (naming the holder)
        while another writer's claim is unexpired.
        """
        ...

    async def take_over_upload(self, upload_id: str, holder: str, writer: str, lease: float) -> int | None:
        """Move the claim from `holder` (known to be dead) to `writer`; None if `holder` no longer has it."""
        ...

    async def renew_upload(self, upload_id: str, writer: str, lease: float) -> bool:
        """Extend `writer`'s claim; False when it no longer holds it (session gone, or taken over)."""
        ...

    async def release_upload(self, upload_id: str, writer: str) -> bool:
        """End `writer`'s claim, marking the session active now; False when it no longer held it."""
        ...

    async def count_uploads(self, repository: str) -> int:
        """Open upload sessions in a repository (the per-repository session limit counts them)."""
        ...

    async def delete_upload(self, upload_id: str) -> None: ...

    async def expired_uploads(self, before: datetime) -> list[str]: ...

    async def get_manifest(self, repository: str, reference: str) -> ManifestRecord | None:
        """Look a manifest up by digest (a reference with a colon) or by tag."""
        ...

    async def put_manifest(self, repository: str, put: ManifestPut) -> None:
        """Record a manifest (and its tags); raises MissingReferences, recording nothing, if it dangles."""
        ...

    async def delete_manifest(self, repository: str, digest: str) -> bool: ...

    async def delete_tag(self, repository: str, tag: str) -> bool: ...

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str] | None:
        """Tags in lexical order after `last`, or None when the repository is unknown."""
        ...

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]: ...

    async def referrers(self, repository: str, subject: str) -> list[ManifestRecord]: ...

    # Garbage collection (registry/lifecycle/collector.py says how these close the races).

    async def refresh_link(self, repository: str, digest: str, older_than: datetime) -> None:
        """Move a blob's link time in a repository to now if it is older than `older_than`: a client
        that just found the blob (HEAD) is about to reference it, so it is kept through the grace."""
        ...

    async def mount_blob(self, source: str, repository: str, digest: str) -> int | None:
        """Link a blob of `source` into `repository` in one transaction that holds the blob's row, so a
        collector cannot forget it in between; its size, or None when `source` has no such blob."""
        ...

    async def unreferenced_blobs(self, linked_before: datetime) -> list[str]:
        """Blobs no manifest references and no repository linked since `linked_before`: candidates.

        Manifests, tagged or not, are the roots; a repository's link protects a blob only for the grace
        period that `linked_before` ends, while the push that made it has yet to write its manifest.
        """
        ...

    async def forget_blobs(
        self, digests: Sequence[str], linked_before: datetime, delete_after: datetime
    ) -> list[tuple[str, int]]:
        """Re-check candidates, each under its row's lock, and drop those still garbage with their links,
        queueing their bytes for deletion after `delete_after`, in one transaction; (digest, size) of
        each dropped."""
        ...

    async def garbage_manifests(self, created_before: datetime, untagged: bool) -> list[tuple[str, str]]:
        """(repository, digest) of manifests to collect: untagged referrers whose subject is gone from
        their repository and, with `untagged`, every untagged manifest no index in its repository
        references; each pushed before `created_before`."""
        ...

    async def forget_manifest(
        self, repository: str, digest: str, created_before: datetime, untagged: bool
    ) -> bool:
        """Re-check a manifest under its row's lock and, if still garbage, delete it with its references."""
        ...

    async def hold_bytes(self, digest: str, until: datetime) -> None:
        """Before a writer publishes bytes at `digest`: no collector may delete them before `until` (or
        before the writer's `link_blob`). Waits for a collector deleting those bytes now to finish."""
        ...

    async def queue_orphan(self, digest: str, delete_after: datetime) -> bool:
        """Queue stored bytes that neither a blob record nor a queued delete describes; False otherwise."""
        ...

    async def delete_due_bytes(
        self, now: datetime, delete: Callable[[str], Awaitable[None]], batch: int
    ) -> list[str]:
        """Work through the queued deletes due by `now`, up to `batch` per transaction: call
        `delete(digest)` (the store's delete) while the queue rows are held, unless a blob record has
        come back for it, and drop the rows. The digests whose bytes went. The index never touches bytes
        itself; it only says when it is safe to."""
        ...

    async def due_deletes(self, now: datetime) -> int:
        """Queued byte deletes due by `now` (a dry run's count)."""
        ...

    def collector_lock(self) -> AbstractAsyncContextManager[bool]:
        """The collector's leader lock, held while the context is open: True when this caller has it,
        False at once when another process (on any replica) holds it."""
        ...

    # Scrub: what the index claims, checked against the bytes elsewhere (the index never reads a blob).

    async def blob_digests(self, repository: str | None) -> list[str]:
        """Every blob the index says is stored, or those linked into `repository`."""
        ...

    async def blob_repositories(self, digest: str) -> list[str]:
        """The repositories a blob is linked into, by name."""
        ...

    async def drop_blob(self, digest: str) -> list[str]:
        """Forget a blob whose bytes are gone or wrong, links and all, in one transaction.

        Then no repository answers for it, so a client's HEAD before pushing sees 404 and uploads it
        again. Manifests keep referencing it. Returns the repositories it was linked into.
        """
        ...

    def stored_manifests(self, repository: str | None) -> AsyncIterator[StoredManifest]:
        """Every manifest with its bytes (or those of `repository`), a page at a time."""
        ...

    async def manifest_tags(self, repository: str, digest: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    service_account: bool = False
    groups: tuple[str, ...] = ()


class UserDirectory(Protocol):
    """Users and groups, kept apart from the content index: only auth and the admin commands use them.

    Changes raise ValueError with a message for the operator when a name is unknown or already taken.
    """

    async def close(self) -> None: ...

    async def get_user(self, name: str) -> UserRecord | None: ...

    async def list_users(self) -> list[UserRecord]: ...

    async def add_user(self, name: str, password_hash: str, service_account: bool = False) -> None: ...

    async def set_password(self, name: str, password_hash: str) -> None: ...

    async def remove_user(self, name: str) -> None: ...

    async def list_groups(self) -> dict[str, list[str]]:
        """Every group with its members' names."""
        ...

    async def add_group(self, name: str) -> None: ...

    async def remove_group(self, name: str) -> None: ...

    async def add_member(self, group: str, user: str) -> None: ...

    async def remove_member(self, group: str, user: str) -> None: ...
