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


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An event for the webhooks, stored with the change it reports: its envelope object as JSON text,
    and the endpoints owed it, each with its backlog (beyond which the event is kept as failed)."""

    repository: str
    payload: str
    endpoints: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event claimed for one endpoint."""

    event_id: int
    endpoint: str
    repository: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """A delivery still owed, as `registry events` lists it."""

    event_id: int
    endpoint: str
    repository: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    payload: str


class Outbox(Protocol):
    """The delivery side of the outbox: what the webhook workers and `registry events` use."""

    async def record(self, entries: Sequence[OutboxEntry]) -> None:
        """Store events that report no change of their own (pulls), in one transaction."""
        ...

    async def claim(self, endpoint: str, claimant: str, lease: float, limit: int) -> list[Delivery]:
        """Up to `limit` pending deliveries due now, each the oldest still owed in its repository (so a
        repository's events go out in order), claimed by `claimant` for `lease` seconds."""
        ...

    async def delivered(self, delivery: Delivery, claimant: str) -> None:
        """Forget a sent delivery (and the event once no endpoint is owed it)."""
        ...

    async def postpone(self, delivery: Delivery, claimant: str, error: str, delay: float) -> None:
        """Release a failed attempt's claim, to be tried again after `delay` seconds."""
        ...

    async def owed(self, states: Sequence[str], limit: int) -> list[DeliveryState]: ...

    async def retry(self, endpoint: str | None, event_ids: Sequence[int]) -> int:
        """Make failed (and waiting) deliveries due now, of one endpoint or all, or only these events;
        returns how many."""
        ...

    async def counts(self) -> dict[tuple[str, str], int]:
        """Deliveries owed by (endpoint, state): the backlog gauges."""
        ...


@dataclass(frozen=True, slots=True)
class Quota:
    """A storage limit a manifest push must respect: the bytes of the blobs referenced by the manifests
    of every repository matching the glob `repositories`, each blob once."""

    repositories: str
    limit: int


@dataclass(frozen=True, slots=True)
class PutGuard:
    """What a manifest push may not do, checked in the transaction that records it, so that two
    pushes at once cannot both slip past: move one of `fixed_tags` to another manifest, or go over one
    of `quotas`."""

    fixed_tags: frozenset[str] = frozenset()
    quotas: tuple[Quota, ...] = ()


@dataclass(frozen=True, slots=True)
class TagState:
    """A tag as retention sees it: its manifest and when it was last pushed or moved."""

    name: str
    digest: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ManifestState:
    """A manifest as retention sees it: when it was pushed, the manifest it refers to (a referrer's
    subject) and the manifests it lists (an index's children)."""

    digest: str
    created_at: datetime
    subject: str | None = None
    children: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    name: str
    blobs: int
    bytes: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Bytes of the blobs the manifests reference, per repository and in total (a blob shared between
    repositories counted once in the total), as `docker system df` counts shared layers."""

    repositories: list[RepositoryUsage]
    blobs: int
    bytes: int


class TagFixed(Exception):
    """A change would move or delete an immutable tag; nothing was changed."""

    def __init__(self, tag: str, digest: str) -> None:
        super().__init__(f"tag {tag} is immutable")
        self.tag = tag
        self.digest = digest


class QuotaExceeded(Exception):
    """A manifest push would take a namespace over its quota; nothing was recorded."""

    def __init__(self, quota: Quota, used: int, after: int) -> None:
        super().__init__(f"quota of {quota.repositories} exceeded")
        self.quota = quota
        self.used = used
        self.after = after


class MissingReferences(Exception):
    def __init__(self, blobs: Sequence[str], manifests: Sequence[str]) -> None:
        super().__init__("manifest references unknown content")
        self.blobs = list(blobs)
        self.manifests = list(manifests)


@dataclass(frozen=True, slots=True)
class BytesHold:
    """A writer's hold on a digest's bytes: no collector deletes them before `until` (or the writer's
    `link_blob`), so bytes being published are never taken from under the push."""

    digest: str
    until: datetime


# Given the tags and manifests a retention transaction deleted, the outbox entries that report them.
RetentionReport = Callable[[Sequence[str], Sequence[str]], Sequence[OutboxEntry]]


class UploadBusy(Exception):
    """Another request holds the upload session's write claim."""

    def __init__(self, holder: str) -> None:
        super().__init__("the upload session is being written by another request")
        self.holder = holder


class MetadataIndex(Protocol):
    """Each change takes the outbox entries (webhook events) that report it, written in its transaction."""

    outbox: Outbox

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Raise unless the database answers now: the readiness probe's question."""
        ...

    def version(self) -> bytes | None:
        """A token that changes with every change of the index by any process, read without a query:
        what answers kept in memory are filed under. None when there is none to read (PostgreSQL,
        before `open`): then nothing may be kept."""
        ...

    async def usage(self) -> Usage:
        """Totals for the storage gauges: two aggregate queries, so callers cache the answer."""
        ...

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob linked into the repository, or None."""
        ...

    async def blob_link(self, repository: str, digest: str) -> tuple[int, datetime] | None:
        """Size of a blob linked into the repository and its link time (see `refresh_link`), or None."""
        ...

    async def repositories_holding(self, digest: str, limit: int) -> list[str]:
        """Up to `limit` repositories a blob is linked into, in name order (a mount without `from`)."""
        ...

    async def any_blob_size(self, digest: str) -> int | None:
        """Size of a blob the index records anywhere (scrub tells a collected blob from a lost one)."""
        ...

    async def link_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        upload_id: str | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        """Make a committed blob visible in a repository, closing the upload session that made it."""
        ...

    async def unlink_blob(self, repository: str, digest: str, outbox: Sequence[OutboxEntry] = ()) -> bool: ...

    async def create_upload(self, upload_id: str, repository: str) -> None: ...

    async def upload_exists(self, upload_id: str, repository: str) -> bool: ...

    async def claim_upload(
        self, upload_id: str, repository: str, writer: str, lease: float, hold: BytesHold | None = None
    ) -> int | None:
        """Make `writer` the session's only writer for `lease` seconds and return the claim's generation;
        with `hold`, in the same transaction, `hold_bytes` (a request that finishes the upload).

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

    async def upload_ids(self) -> list[str]:
        """Every open upload session: the store's staged bytes of any other session are leftovers."""
        ...

    async def expired_uploads(self, before: datetime) -> list[str]: ...

    async def get_manifest(self, repository: str, reference: str) -> ManifestRecord | None:
        """Look a manifest up by digest (a reference with a colon) or by tag."""
        ...

    async def put_manifest(
        self,
        repository: str,
        put: ManifestPut,
        guard: PutGuard | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        """Record a manifest (and its tags); raises MissingReferences if it dangles, TagFixed or
        QuotaExceeded if the guard forbids it, recording nothing."""
        ...

    async def delete_manifest(
        self,
        repository: str,
        digest: str,
        fixed: Callable[[str], bool] | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> bool:
        """Delete a manifest and its tags; raises TagFixed, deleting nothing, if `fixed` says one of
        its tags is immutable."""
        ...

    async def delete_tag(self, repository: str, tag: str, outbox: Sequence[OutboxEntry] = ()) -> bool: ...

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

    async def mount_blob(
        self, source: str, repository: str, digest: str, outbox: Sequence[OutboxEntry] = ()
    ) -> int | None:
        """Link a blob of `source` into `repository` in one transaction that holds the blob's row, so a
        collector cannot forget it in between (the mount's outbox entries stored in it too); its size,
        or None when `source` has no such blob (and nothing is written)."""
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

    async def hold_bytes(self, hold: BytesHold) -> None:
        """Before a writer publishes bytes at `hold.digest`: no collector may delete them before
        `hold.until` (or the writer's `link_blob`). Waits for a collector deleting those bytes now to
        finish."""
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

    # Lifecycle: retention, usage, repository deletion.

    async def retention_state(self, repository: str) -> tuple[list[TagState], list[ManifestState]]:
        """A repository's tags and manifests with their times, for retention to choose from."""
        ...

    async def remove_retained(
        self,
        repository: str,
        tags: Sequence[tuple[str, str]],
        manifests: Sequence[str],
        report: RetentionReport | None = None,
    ) -> tuple[list[str], list[str]]:
        """Delete, in one transaction, each (tag, digest) still on that digest and each manifest, in
        order, still untagged and listed by no other manifest: what retention chose, minus what
        changed since. Returns the tags and the manifests' digests that went; `report`, given them,
        names the outbox entries stored in the same transaction."""
        ...

    async def quota_usage(self, repositories: str, digest: str) -> tuple[int, bool]:
        """The bytes a quota's namespace uses, and whether `digest` counts among them already."""
        ...

    async def usage_report(self, repositories: str) -> UsageReport:
        """Bytes referenced by the repositories matching a glob (`*`: all)."""
        ...

    async def delete_repository(self, repository: str) -> bool:
        """Delete a repository's tags, manifests and blob links, and the repository, in one
        transaction; the blobs' bytes are left to the collector. False when there is no such
        repository."""
        ...


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
