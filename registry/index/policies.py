"""The lifecycle's SQL: quota and immutable-tag checks inside a manifest push's transaction, what
retention reads and deletes, usage per repository, and deleting a whole repository.

Usage counts the blobs (configs and layers) that manifests reference, each once per repository and
once in a total, by their recorded size: blobs uploaded but referenced by no manifest are the
collector's, not anyone's usage, so a push refused for its quota leaves nothing counted behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, select

from registry.index.base import (
    ManifestState,
    Quota,
    QuotaExceeded,
    RepositoryUsage,
    TagFixed,
    TagState,
    UsageReport,
)
from registry.index.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag

if TYPE_CHECKING:
    from registry.index.sql import _WriteStatements

_IN_NAMESPACE = Repository.name.like(bindparam("pattern"), escape="\\")
# (repository id, digest) of every blob a manifest references, once per repository.
_REFERENCED = (
    select(Manifest.repository_id.label("repository_id"), ManifestReference.digest.label("digest"))
    .join(Manifest, Manifest.id == ManifestReference.manifest_id)
    .where(ManifestReference.is_manifest.is_(False))
    .distinct()
    .subquery()
)
# Every blob the manifests of the namespace's repositories reference (a digest may come more than once:
# IN takes each once, and costs less than a DISTINCT here).
_NAMESPACE_DIGESTS = (
    select(ManifestReference.digest)
    .join(Manifest, Manifest.id == ManifestReference.manifest_id)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(ManifestReference.is_manifest.is_(False), _IN_NAMESPACE)
)
_NAMESPACE_BYTES = select(func.coalesce(func.sum(Blob.size), 0)).where(Blob.digest.in_(_NAMESPACE_DIGESTS))
# Of these blobs, the bytes of those the namespace does not count yet: indexed lookups by digest.
_NEW_BYTES = select(func.coalesce(func.sum(Blob.size), 0)).where(
    Blob.digest.in_(bindparam("digests", expanding=True)),
    ~exists(_NAMESPACE_DIGESTS.where(ManifestReference.digest == Blob.digest)),
)
USAGE_TOTAL = select(func.count(Blob.digest), func.coalesce(func.sum(Blob.size), 0)).where(
    Blob.digest.in_(_NAMESPACE_DIGESTS)
)
COUNTED = (
    select(func.count())
    .select_from(ManifestReference)
    .join(Manifest, Manifest.id == ManifestReference.manifest_id)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(ManifestReference.digest == bindparam("digest"), _IN_NAMESPACE)
)
USAGE_PER_REPOSITORY = (
    select(Repository.name, func.count(Blob.digest), func.coalesce(func.sum(Blob.size), 0))
    .select_from(Repository)
    .outerjoin(_REFERENCED, _REFERENCED.c.repository_id == Repository.id)
    .outerjoin(Blob, Blob.digest == _REFERENCED.c.digest)
    .where(_IN_NAMESPACE)
    .group_by(Repository.name)
    .order_by(Repository.name)
)
_TAGS = (
    select(Tag.name, Manifest.digest, Tag.updated_at)
    .join(Manifest, Manifest.id == Tag.manifest_id)
    .where(Tag.repository_id == bindparam("repository_id"))
)
_MANIFESTS = select(Manifest.id, Manifest.digest, Manifest.created_at, Manifest.subject).where(
    Manifest.repository_id == bindparam("repository_id")
)
_CHILDREN = (
    select(ManifestReference.manifest_id, ManifestReference.digest)
    .join(Manifest, Manifest.id == ManifestReference.manifest_id)
    .where(Manifest.repository_id == bindparam("repository_id"), ManifestReference.is_manifest.is_(True))
)
_TAG_ON = (
    select(Tag.name, Manifest.digest)
    .join(Manifest, Manifest.id == Tag.manifest_id)
    .where(Tag.repository_id == bindparam("repository_id"), Tag.name.in_(bindparam("names", expanding=True)))
)
_TAGS_OF_MANIFEST = select(Tag.name).where(Tag.manifest_id == bindparam("manifest_id"))
# A manifest retention may still delete: untagged, and listed by no other manifest of its repository.
_UNKEPT_MANIFEST = select(Manifest.id).where(
    Manifest.repository_id == bindparam("repository_id"),
    Manifest.digest == bindparam("digest"),
    ~exists().where(Tag.manifest_id == Manifest.id),
    ~exists()
    .where(
        ManifestReference.digest == Manifest.digest,
        ManifestReference.is_manifest.is_(True),
        ManifestReference.manifest_id.in_(
            select(Manifest.id).where(Manifest.repository_id == bindparam("repository_id"))
        ),
    )
    .correlate(Manifest),
)


def glob_like(pattern: str) -> str:
    """A repository glob (`*` any run, `?` one character) as a SQL LIKE pattern, escaped with a
    backslash (`_` is common in names)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# A test seam: called inside a push's transaction once it has read a namespace's usage, so a test can
# hold one push there and show that another push cannot read the same usage meanwhile.
quota_read: Callable[[Quota], None] | None = None


def _aware(moment: datetime) -> datetime:
    """SQLite gives times back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_fixed_tags(conn: Connection, repository_id: int, tags: frozenset[str], digest: str) -> None:
    """Raise TagFixed if one of these (immutable) tags is on a manifest other than `digest`."""
    if not tags:
        return
    for name, current in conn.execute(_TAG_ON, {"repository_id": repository_id, "names": sorted(tags)}):
        if current != digest:
            raise TagFixed(name, current)


def check_quotas(conn: Connection, quotas: Sequence[Quota], blobs: Sequence[str]) -> None:
    """Raise QuotaExceeded if adding references to `blobs` takes a namespace over its limit.

    On PostgreSQL each namespace is locked first (a transaction-scoped advisory lock, in name order so
    two pushes cannot deadlock), so pushes into one namespace are checked one after the other; SQLite's
    write transactions are serialised already. A push that adds nothing new is let through even over
    the limit (a lowered limit must not stop re-tagging), without summing the namespace's usage.
    """
    ordered = sorted(quotas, key=lambda quota: quota.repositories)
    if conn.dialect.name == "postgresql":
        for quota in ordered:
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("quota:" + quota.repositories))))
    digests = sorted(set(blobs))
    for quota in ordered:
        pattern = glob_like(quota.repositories)
        new = conn.scalar(_NEW_BYTES, {"pattern": pattern, "digests": digests}) if digests else 0
        if not new:
            continue  # only the sum over the whole namespace costs: skipped when nothing is added
        used = conn.scalar(_NAMESPACE_BYTES, {"pattern": pattern})
        if quota_read is not None:
            quota_read(quota)
        if used + new > quota.limit:
            raise QuotaExceeded(quota, int(used), int(used + new))


def check_deletable(
    conn: Connection, manifest_id: int, fixed: Callable[[str], bool] | None, digest: str
) -> None:
    """Raise TagFixed if an immutable tag is on the manifest about to be deleted."""
    if fixed is None:
        return
    for name in conn.scalars(_TAGS_OF_MANIFEST, {"manifest_id": manifest_id}):
        if fixed(name):
            raise TagFixed(name, digest)


def retention_state(conn: Connection, repository_id: int) -> tuple[list[TagState], list[ManifestState]]:
    params = {"repository_id": repository_id}
    tags = [TagState(name, digest, _aware(at)) for name, digest, at in conn.execute(_TAGS, params)]
    children: dict[int, list[str]] = {}
    for parent, child in conn.execute(_CHILDREN, params):
        children.setdefault(parent, []).append(child)
    manifests = [
        ManifestState(digest, _aware(at), subject, tuple(sorted(children.get(row_id, ()))))
        for row_id, digest, at, subject in conn.execute(_MANIFESTS, params)
    ]
    return tags, manifests


def remove_retained(
    conn: Connection,
    writes: _WriteStatements,
    repository_id: int,
    tags: Sequence[tuple[str, str]],
    manifests: Sequence[str],
) -> tuple[list[str], list[str]]:
    params = {"repository_id": repository_id}
    removed_tags: list[str] = []
    removed_manifests: list[str] = []
    for name, digest in tags:
        manifest_id = conn.scalar(writes.manifest_id, {**params, "digest": digest})
        result = conn.execute(
            delete(Tag).where(
                and_(Tag.repository_id == repository_id, Tag.name == name, Tag.manifest_id == manifest_id)
            )
        )
        if result.rowcount:
            removed_tags.append(name)
    for digest in manifests:
        manifest_id = conn.scalar(_UNKEPT_MANIFEST, {**params, "digest": digest})
        if manifest_id is not None:
            delete_manifest_rows(conn, writes, manifest_id)
            removed_manifests.append(digest)
    return removed_tags, removed_manifests


def delete_manifest_rows(conn: Connection, writes: _WriteStatements, manifest_id: int) -> None:
    # Explicit rather than relying on ON DELETE CASCADE, which SQLite only honours per connection.
    for statement in (writes.delete_tags_of, writes.delete_references_of, writes.delete_manifest):
        conn.execute(statement, {"manifest_id": manifest_id})


def delete_repository(conn: Connection, repository_id: int) -> None:
    manifests = select(Manifest.id).where(Manifest.repository_id == repository_id)
    conn.execute(delete(Tag).where(Tag.repository_id == repository_id))
    conn.execute(delete(ManifestReference).where(ManifestReference.manifest_id.in_(manifests)))
    conn.execute(delete(Manifest).where(Manifest.repository_id == repository_id))
    conn.execute(delete(RepositoryBlob).where(RepositoryBlob.repository_id == repository_id))
    conn.execute(delete(Repository).where(Repository.id == repository_id))


def usage_report(per_repository: list[tuple[str, int, int]], total: tuple[int, int]) -> UsageReport:
    return UsageReport(
        [RepositoryUsage(name, int(blobs), int(size)) for name, blobs, size in per_repository],
        int(total[0]),
        int(total[1]),
    )
