"""The metadata index on SQL through SQLAlchemy's async engine: SQLite (embedded) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    event,
    exists,
    func,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from registry.index import policies
from registry.index.base import (
    BytesHold,
    ManifestPut,
    ManifestRecord,
    ManifestState,
    MissingReferences,
    OutboxEntry,
    PutGuard,
    RetentionReport,
    StoredManifest,
    TagState,
    UploadBusy,
    Usage,
    UsageReport,
)
from registry.index.models import (
    Blob,
    Manifest,
    ManifestReference,
    PendingDelete,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
    utcnow,
)
from registry.index.outbox import SQLOutbox, write_entries
from registry.index.prepared import prepare_all
from registry.index.reads import KEPT_ROWS, Reader, open_reader
from registry.index.writer import GroupWriter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
# The collector's PostgreSQL advisory lock key (any constant; "regc" in ASCII).
COLLECTOR_LOCK_KEY = 0x72656763
# Tries at recording a row that a collector deletes under our feet (PostgreSQL).
RECORD_ATTEMPTS = 3
# Tries at claiming an upload session that is released and re-claimed under our feet.
CLAIM_ATTEMPTS = 5

_MANIFEST_COLUMNS = (
    Manifest.digest,
    Manifest.media_type,
    Manifest.size,
    Manifest.artifact_type,
    Manifest.subject,
    Manifest.annotations,
)


# The read queries, with named parameters; see reads.py for how they run.
_BLOB_TOTALS = select(func.count(), func.coalesce(func.sum(Blob.size), 0)).select_from(Blob)
_OPEN_UPLOADS = select(func.count()).select_from(Upload)
_UPLOAD_IDS = select(Upload.id)
_BLOB_LINK = (
    select(Blob.size, RepositoryBlob.linked_at)
    .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
    .join(Repository, Repository.id == RepositoryBlob.repository_id)
    .where(Repository.name == bindparam("repository"), Blob.digest == bindparam("digest"))
)
_HOLDERS = (
    select(Repository.name)
    .join(RepositoryBlob, RepositoryBlob.repository_id == Repository.id)
    .where(RepositoryBlob.digest == bindparam("digest"))
    .order_by(Repository.name)
    .limit(bindparam("limit"))
)
_BLOB_ANYWHERE = select(Blob.size).where(Blob.digest == bindparam("digest"))
_UPLOAD = select(Upload.id).where(
    Upload.id == bindparam("upload"), Upload.repository == bindparam("repository")
)
_UPLOADS_IN_REPOSITORY = select(func.count(Upload.id)).where(Upload.repository == bindparam("repository"))
_MANIFEST_BY_DIGEST = (
    select(*_MANIFEST_COLUMNS, Manifest.payload)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(Repository.name == bindparam("repository"), Manifest.digest == bindparam("reference"))
)
_MANIFEST_BY_TAG = (
    select(*_MANIFEST_COLUMNS, Manifest.payload)
    .join(Tag, Tag.manifest_id == Manifest.id)
    .join(Repository, Repository.id == Tag.repository_id)
    .where(Repository.name == bindparam("repository"), Tag.name == bindparam("reference"))
)
# Garbage: no manifest references it, and no repository linked it since `linked_before`. Every manifest
# present is a root (tagged or not), and its references rows are what it reaches, so this is the whole
# reachability walk: tags -> manifests -> child manifests (kept as manifests) -> configs and layers.
_UNREFERENCED = ~exists().where(ManifestReference.digest == Blob.digest)
_NO_RECENT_LINK = ~exists().where(
    RepositoryBlob.digest == Blob.digest, RepositoryBlob.linked_at >= bindparam("linked_before")
)
_UNREFERENCED_BLOBS = select(Blob.digest).where(_UNREFERENCED, _NO_RECENT_LINK).order_by(Blob.digest)
# Garbage manifests: untagged, no index in their repository references them, pushed before the grace,
# and either referrers whose subject is gone from the repository or, with the `untagged` policy, any such
# manifest that is not a referrer (a referrer of a manifest still present stays with it).
_Parent = Manifest.__table__.alias("parent")
_Subject = Manifest.__table__.alias("subject_manifest")
_UNTAGGED = ~exists().where(Tag.manifest_id == Manifest.id)
_NOT_A_CHILD = ~exists().where(
    ManifestReference.digest == Manifest.digest,
    ManifestReference.is_manifest,
    _Parent.c.id == ManifestReference.manifest_id,
    _Parent.c.repository_id == Manifest.repository_id,
)
_SUBJECT_GONE = ~exists().where(
    _Subject.c.repository_id == Manifest.repository_id, _Subject.c.digest == Manifest.subject
)
_GARBAGE_MANIFEST = and_(
    Manifest.created_at < bindparam("created_before"),
    _UNTAGGED,
    _NOT_A_CHILD,
    or_(
        and_(Manifest.subject.is_(None), bindparam("untagged")),
        and_(Manifest.subject.is_not(None), _SUBJECT_GONE),
    ),
)
_GARBAGE_MANIFESTS = (
    select(Repository.name, Manifest.digest)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(_GARBAGE_MANIFEST)
    .order_by(Manifest.id)
)
_DUE_DELETES = select(func.count()).where(PendingDelete.delete_after <= bindparam("now"))
_REPOSITORY = select(Repository.id).where(Repository.name == bindparam("repository"))
# "" sorts before every name, so an absent `last` is simply "".
_TAGS = (
    select(Tag.name)
    .join(Repository, Repository.id == Tag.repository_id)
    .where(Repository.name == bindparam("repository"), Tag.name > bindparam("last"))
    .order_by(Tag.name)
    .limit(bindparam("limit"))
)
_REPOSITORIES = (
    select(Repository.name)
    .where(Repository.name > bindparam("last"))
    .order_by(Repository.name)
    .limit(bindparam("limit"))
)
_REFERRERS = (
    select(*_MANIFEST_COLUMNS)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(Repository.name == bindparam("repository"), Manifest.subject == bindparam("subject"))
    .order_by(Manifest.digest)
)
# Scrub's reads: manifests come a page at a time (by id), their payloads being up to 4 MiB each.
_ALL_BLOBS = select(Blob.digest).order_by(Blob.digest)
_LINKED_BLOBS = (
    select(RepositoryBlob.digest)
    .join(Repository, Repository.id == RepositoryBlob.repository_id)
    .where(Repository.name == bindparam("repository"))
    .order_by(RepositoryBlob.digest)
)
_BLOB_REPOSITORIES = (
    select(Repository.name)
    .join(RepositoryBlob, RepositoryBlob.repository_id == Repository.id)
    .where(RepositoryBlob.digest == bindparam("digest"))
    .order_by(Repository.name)
)
_MANIFEST_PAGE = (
    select(Manifest.id, Repository.name, Manifest.digest, Manifest.payload)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(Manifest.id > bindparam("after"))
    .order_by(Manifest.id)
    .limit(bindparam("limit"))
)
_MANIFEST_PAGE_IN_REPOSITORY = _MANIFEST_PAGE.where(Repository.name == bindparam("repository"))
_MANIFEST_TAGS = (
    select(Tag.name)
    .join(Manifest, Manifest.id == Tag.manifest_id)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(Repository.name == bindparam("repository"), Manifest.digest == bindparam("digest"))
    .order_by(Tag.name)
)
MANIFEST_PAGE_SIZE = 64


class _WriteStatements:
    """The write statements, built once per index with named parameters.

    Built per call, SQLAlchemy spent more time constructing and cache-keying statements than SQLite
    spent running them; built once, each execution is a compiled-cache hit.
    """

    def __init__(self, insert: Callable[[Table], Any]) -> None:
        def table(model: type) -> Table:
            return model.__table__  # type: ignore[attr-defined]

        self.repository_id = select(Repository.id).where(Repository.name == bindparam("name"))
        self.add_repository = (
            insert(table(Repository))
            .values(name=bindparam("name"))
            .on_conflict_do_nothing()
            .returning(Repository.id)
        )
        self.add_blob = (
            insert(table(Blob))
            .values(digest=bindparam("digest"), size=bindparam("size"))
            .on_conflict_do_nothing()
        )
        # Holds a blob's row against a collector forgetting it until the transaction ends (PostgreSQL;
        # SQLite drops FOR SHARE, its write transactions being exclusive already).
        self.hold_blob = (
            select(Blob.size).where(Blob.digest == bindparam("digest")).with_for_update(read=True)
        )
        self.hold_linked_blob = (
            select(Blob.size)
            .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
            .where(
                RepositoryBlob.repository_id == bindparam("repository_id"), Blob.digest == bindparam("digest")
            )
            .with_for_update(read=True, of=Blob)
        )
        self.refresh_link = (
            update(RepositoryBlob)
            .where(
                RepositoryBlob.repository_id == bindparam("in_repository"),
                RepositoryBlob.digest == bindparam("of_digest"),
                RepositoryBlob.linked_at < bindparam("older_than"),
            )
            .values(linked_at=bindparam("now"))
        )
        queue = insert(table(PendingDelete)).values(
            digest=bindparam("digest"), delete_after=bindparam("delete_after")
        )
        # A later time never shortens an earlier one: a writer's hold outlasts a collector's queueing.
        self.queue_delete = queue.on_conflict_do_update(
            index_elements=["digest"],
            set_={
                "delete_after": case(
                    (PendingDelete.delete_after > queue.excluded.delete_after, PendingDelete.delete_after),
                    else_=queue.excluded.delete_after,
                )
            },
        )
        self.queue_orphan = queue.on_conflict_do_nothing(index_elements=["digest"])
        self.unqueue_delete = delete(PendingDelete).where(PendingDelete.digest == bindparam("digest"))
        self.due_deletes = (
            select(PendingDelete.digest)
            .where(PendingDelete.delete_after <= bindparam("now"))
            .order_by(PendingDelete.delete_after)
            .limit(bindparam("batch"))
            .with_for_update(skip_locked=True)
        )
        link_blob = insert(table(RepositoryBlob)).values(
            repository_id=bindparam("repository_id"), digest=bindparam("digest"), linked_at=bindparam("now")
        )
        self.link_blob = link_blob.on_conflict_do_update(
            index_elements=["repository_id", "digest"], set_={"linked_at": link_blob.excluded.linked_at}
        )
        self.unlink_blob = delete(RepositoryBlob).where(
            RepositoryBlob.repository_id == bindparam("repository_id"),
            RepositoryBlob.digest == bindparam("digest"),
        )
        # A manifest PUT holds the rows of what it references (FOR SHARE), so a collector forgetting one
        # of them either finishes first (the PUT then finds it gone: MANIFEST_BLOB_UNKNOWN) or waits for
        # the PUT, and then sees the new reference when it re-checks.
        self.linked_blobs = (
            select(Blob.digest)
            .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
            .where(
                RepositoryBlob.repository_id == bindparam("repository_id"),
                Blob.digest.in_(bindparam("digests", expanding=True)),
            )
            .with_for_update(read=True, of=Blob)
        )
        self.present_manifests = (
            select(Manifest.digest)
            .where(
                Manifest.repository_id == bindparam("repository_id"),
                Manifest.digest.in_(bindparam("digests", expanding=True)),
            )
            .with_for_update(read=True)
        )
        self.manifest_id = select(Manifest.id).where(
            Manifest.repository_id == bindparam("repository_id"), Manifest.digest == bindparam("digest")
        )
        self.hold_manifest = self.manifest_id.with_for_update(read=True)
        self.add_manifest = (
            insert(table(Manifest))
            .values(
                repository_id=bindparam("repository_id"),
                digest=bindparam("digest"),
                media_type=bindparam("media_type"),
                size=bindparam("size"),
                artifact_type=bindparam("artifact_type"),
                subject=bindparam("subject"),
                annotations=bindparam("annotations"),
                payload=bindparam("payload"),
            )
            .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            .returning(Manifest.id)
        )
        self.add_reference = insert(table(ManifestReference)).on_conflict_do_nothing()
        set_tag = insert(table(Tag)).values(
            repository_id=bindparam("repository_id"),
            name=bindparam("name"),
            manifest_id=bindparam("manifest_id"),
            updated_at=bindparam("now"),
        )
        self.set_tag = set_tag.on_conflict_do_update(
            index_elements=["repository_id", "name"],
            set_={"manifest_id": set_tag.excluded.manifest_id, "updated_at": set_tag.excluded.updated_at},
        )
        self.delete_tag = delete(Tag).where(
            Tag.repository_id == bindparam("repository_id"), Tag.name == bindparam("name")
        )
        self.delete_tags_of = delete(Tag).where(Tag.manifest_id == bindparam("manifest_id"))
        self.delete_references_of = delete(ManifestReference).where(
            ManifestReference.manifest_id == bindparam("manifest_id")
        )
        self.delete_manifest = delete(Manifest).where(Manifest.id == bindparam("manifest_id"))
        # The collector locks a row first and re-checks it in a later statement: on PostgreSQL (read
        # committed) that statement's snapshot then includes whatever a writer that held the row
        # committed. It skips a row a writer holds now (being referenced: likely not garbage; the next
        # run looks again), so it never waits for a writer, and a batch cannot deadlock with one.
        self.lock_blob = (
            select(Blob.size).where(Blob.digest == bindparam("digest")).with_for_update(skip_locked=True)
        )
        self.garbage_blob = select(Blob.digest).where(
            Blob.digest == bindparam("digest"), _UNREFERENCED, _NO_RECENT_LINK
        )
        self.lock_manifest = (
            select(Manifest.id)
            .join(Repository, Repository.id == Manifest.repository_id)
            .where(Repository.name == bindparam("repository"), Manifest.digest == bindparam("digest"))
            .with_for_update(of=Manifest, skip_locked=True)
        )
        self.garbage_manifest = select(Manifest.id).where(
            Manifest.id == bindparam("manifest_id"), _GARBAGE_MANIFEST
        )
        self.unlink_everywhere = delete(RepositoryBlob).where(RepositoryBlob.digest == bindparam("digest"))
        self.forget_blob = delete(Blob).where(Blob.digest == bindparam("digest"))
        self.add_upload = insert(table(Upload)).values(id=bindparam("id"), repository=bindparam("repository"))
        # What a new write claim sets, whether it finds the session free or takes it from a dead holder.
        claimed = {
            "writer": bindparam("claimant"),
            "lease_until": bindparam("until"),
            "generation": Upload.generation + 1,
            "updated_at": bindparam("now"),
        }
        self.claim_upload = (
            update(Upload)
            .where(
                Upload.id == bindparam("upload"),
                Upload.repository == bindparam("in_repository"),
                or_(Upload.writer.is_(None), Upload.lease_until < bindparam("now")),
            )
            .values(**claimed)
            .returning(Upload.generation)
        )
        self.upload_holder = select(Upload.writer).where(
            Upload.id == bindparam("upload"), Upload.repository == bindparam("in_repository")
        )
        self.take_over_upload = (
            update(Upload)
            .where(Upload.id == bindparam("upload"), Upload.writer == bindparam("holder"))
            .values(**claimed)
            .returning(Upload.generation)
        )
        self.renew_upload = (
            update(Upload)
            .where(Upload.id == bindparam("upload"), Upload.writer == bindparam("claimant"))
            .values(lease_until=bindparam("until"), updated_at=bindparam("now"))
        )
        self.release_upload = (
            update(Upload)
            .where(Upload.id == bindparam("upload"), Upload.writer == bindparam("claimant"))
            .values(writer=None, lease_until=None, updated_at=bindparam("now"))
        )
        self.delete_upload = delete(Upload).where(Upload.id == bindparam("id"))


def create_engine(url: str) -> AsyncEngine:
    """The async engine (Alembic's migrations; the index's writes on PostgreSQL).

    Imported here, not at the top: a SQLite worker never needs SQLAlchemy's asyncio layer.
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _create_sqlite_writer(url: str) -> Engine:
    """The synchronous engine that SQLite writes go through, from the writer thread."""
    engine = create_sync_engine(make_url(url).set(drivername="sqlite"), pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _sqlite_manual_transactions)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside a writer; NORMAL sync is durable against a process crash (SIGKILL),
    # which is what the index must survive; foreign keys make deletes cascade as on PostgreSQL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    # Stop the driver from beginning transactions on its own, so the "begin" hook below decides how.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Connection) -> None:
    # Take the write lock when the transaction starts: a deferred transaction that reads first and
    # writes later fails outright ("database is locked") if another process wrote in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class SQLIndex:
    """Writes are plain synchronous transaction functions over a SQLAlchemy `Connection`.

    On SQLite they run whole on one writer thread, those waiting together committed as one
    (writer.py). On PostgreSQL the same functions run on the async engine through `run_sync`.
    Reads go through reads.py.
    """

    def __init__(self, url: str, kept_bytes: int = KEPT_ROWS) -> None:
        """`kept_bytes`: how much of SQLite's query answers each process keeps while the database is
        unchanged (reads.py)."""
        self.url = url
        self._kept_bytes = kept_bytes
        self._sqlite = url.startswith("sqlite")
        self._async_engine: AsyncEngine | None = None
        self._writer: GroupWriter | None = None
        if self._sqlite:
            engine = _create_sqlite_writer(url)
            self._writes = _WriteStatements(sqlite.insert)
            self._writer = GroupWriter(engine, prepare_all(vars(self._writes).values(), engine.dialect))
            self._dialect: Dialect = engine.dialect
        else:
            from sqlalchemy.dialects import postgresql

            self._async_engine = create_engine(url)
            self._writes = _WriteStatements(postgresql.insert)
            self._dialect = self._async_engine.dialect
        self._reader: Reader | None = None
        self.outbox = SQLOutbox(self._transaction)

    async def open(self) -> None:
        self._reader = await open_reader(self.url, self._dialect, self._kept_bytes)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._async_engine is not None:
            await self._async_engine.dispose()
        if self._writer is not None:
            self._writer.close()

    async def check(self) -> None:
        assert self._reader is not None, "SQLIndex.open() was not awaited"
        await self._reader.check()

    def version(self) -> bytes | None:
        return self._reader.version() if self._reader is not None else None

    async def usage(self) -> Usage:
        blobs, stored = (await self._rows(_BLOB_TOTALS))[0]
        uploads = (await self._rows(_OPEN_UPLOADS))[0][0]
        return Usage(blobs=int(blobs), blob_bytes=int(stored), uploads=int(uploads))

    async def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        if self._writer is not None:
            return await self._writer.run(work, *args)
        assert self._async_engine is not None
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(work, *args)

    async def _rows(self, query: Select, **params: Any) -> list[Any]:
        assert self._reader is not None, "SQLIndex.open() was not awaited"
        return await self._reader.all(query, **params)

    async def _first(self, query: Select, **params: Any) -> Any:
        rows = await self._rows(query, **params)
        return rows[0] if rows else None

    async def _column(self, query: Select, **params: Any) -> list[Any]:
        return [row[0] for row in await self._rows(query, **params)]

    def _repository_id(self, conn: Connection, name: str, create: bool = False) -> int | None:
        repo_id = conn.scalar(self._writes.repository_id, {"name": name})
        if repo_id is None and create:
            # None from the insert means another process created it in between: read it back.
            repo_id = conn.scalar(self._writes.add_repository, {"name": name}) or conn.scalar(
                self._writes.repository_id, {"name": name}
            )
        return repo_id

    # Blobs

    async def blob_size(self, repository: str, digest: str) -> int | None:
        link = await self.blob_link(repository, digest)
        return link[0] if link else None

    async def blob_link(self, repository: str, digest: str) -> tuple[int, datetime] | None:
        row = await self._first(_BLOB_LINK, repository=repository, digest=digest)
        return (row[0], _instant(row[1])) if row else None

    async def repositories_holding(self, digest: str, limit: int) -> list[str]:
        return await self._column(_HOLDERS, digest=digest, limit=limit)

    async def any_blob_size(self, digest: str) -> int | None:
        row = await self._first(_BLOB_ANYWHERE, digest=digest)
        return row[0] if row else None

    async def link_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        upload_id: str | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        await self._transaction(self._link_blob, repository, digest, size, upload_id, outbox)

    def _link_blob(
        self,
        conn: Connection,
        repository: str,
        digest: str,
        size: int,
        upload_id: str | None,
        outbox: Sequence[OutboxEntry],
    ) -> None:
        repo_id = self._repository_id(conn, repository, create=True)
        self._record_blob(conn, digest, size)
        conn.execute(self._writes.link_blob, {"repository_id": repo_id, "digest": digest, "now": utcnow()})
        # The bytes are described again: the writer's hold (or any queued delete) is over.
        conn.execute(self._writes.unqueue_delete, {"digest": digest})
        if upload_id is not None:
            conn.execute(self._writes.delete_upload, {"id": upload_id})
        write_entries(conn, outbox)

    def _record_blob(self, conn: Connection, digest: str, size: int) -> None:
        """Insert the blob's row, or hold the one there; a collector may delete that one as we look
        (PostgreSQL), and then we insert it afresh."""
        for _ in range(RECORD_ATTEMPTS):
            conn.execute(self._writes.add_blob, {"digest": digest, "size": size})
            if conn.scalar(self._writes.hold_blob, {"digest": digest}) is not None:
                return
        raise RuntimeError(f"blob {digest} kept disappearing while it was being recorded")

    async def mount_blob(
        self, source: str, repository: str, digest: str, outbox: Sequence[OutboxEntry] = ()
    ) -> int | None:
        return await self._transaction(self._mount_blob, source, repository, digest, outbox)

    def _mount_blob(
        self, conn: Connection, source: str, repository: str, digest: str, outbox: Sequence[OutboxEntry]
    ) -> int | None:
        source_id = self._repository_id(conn, source)
        if source_id is None:
            return None
        size = conn.scalar(self._writes.hold_linked_blob, {"repository_id": source_id, "digest": digest})
        if size is None:
            return None
        repo_id = self._repository_id(conn, repository, create=True)
        conn.execute(self._writes.link_blob, {"repository_id": repo_id, "digest": digest, "now": utcnow()})
        write_entries(conn, outbox)
        return size

    async def refresh_link(self, repository: str, digest: str, older_than: datetime) -> None:
        await self._transaction(self._refresh_link, repository, digest, older_than)

    def _refresh_link(self, conn: Connection, repository: str, digest: str, older_than: datetime) -> None:
        repo_id = self._repository_id(conn, repository)
        params = {"in_repository": repo_id, "of_digest": digest, "older_than": older_than, "now": utcnow()}
        conn.execute(self._writes.refresh_link, params)

    async def unlink_blob(self, repository: str, digest: str, outbox: Sequence[OutboxEntry] = ()) -> bool:
        return await self._transaction(self._unlink_blob, repository, digest, outbox)

    def _unlink_blob(
        self, conn: Connection, repository: str, digest: str, outbox: Sequence[OutboxEntry]
    ) -> bool:
        repo_id = self._repository_id(conn, repository)
        if repo_id is None:
            return False
        result = conn.execute(self._writes.unlink_blob, {"repository_id": repo_id, "digest": digest})
        return _reported(conn, result.rowcount > 0, outbox)

    # Upload sessions

    async def create_upload(self, upload_id: str, repository: str) -> None:
        await self._transaction(
            _execute, self._writes.add_upload, {"id": upload_id, "repository": repository}
        )

    async def upload_exists(self, upload_id: str, repository: str) -> bool:
        return await self._first(_UPLOAD, upload=upload_id, repository=repository) is not None

    async def claim_upload(
        self, upload_id: str, repository: str, writer: str, lease: float, hold: BytesHold | None = None
    ) -> int | None:
        return await self._transaction(self._claim_upload, upload_id, repository, writer, lease, hold)

    def _claim_upload(
        self,
        conn: Connection,
        upload_id: str,
        repository: str,
        writer: str,
        lease: float,
        hold: BytesHold | None,
    ) -> int | None:
        params = {"upload": upload_id, "in_repository": repository, "claimant": writer, **_lease(lease)}
        # On PostgreSQL the update and the look at the holder see different moments: a claim held when
        # the update ran may be released by the time we look, and then the session is free to claim.
        for _ in range(CLAIM_ATTEMPTS):
            generation = conn.scalar(self._writes.claim_upload, params)
            if generation is not None:
                if hold is not None:
                    self._hold_bytes(conn, hold)
                return generation
            holder = conn.execute(self._writes.upload_holder, params).first()
            if holder is None:
                return None
            if holder[0] is not None:
                raise UploadBusy(holder[0])
        raise UploadBusy("")

    async def take_over_upload(self, upload_id: str, holder: str, writer: str, lease: float) -> int | None:
        params = {"upload": upload_id, "holder": holder, "claimant": writer, **_lease(lease)}
        return await self._transaction(_scalar, self._writes.take_over_upload, params)

    async def renew_upload(self, upload_id: str, writer: str, lease: float) -> bool:
        params = {"upload": upload_id, "claimant": writer, **_lease(lease)}
        return await self._transaction(_changed_any, self._writes.renew_upload, params)

    async def release_upload(self, upload_id: str, writer: str) -> bool:
        params = {"upload": upload_id, "claimant": writer, "now": utcnow()}
        return await self._transaction(_changed_any, self._writes.release_upload, params)

    async def count_uploads(self, repository: str) -> int:
        row = await self._first(_UPLOADS_IN_REPOSITORY, repository=repository)
        return row[0] if row else 0

    async def delete_upload(self, upload_id: str) -> None:
        await self._transaction(_execute, self._writes.delete_upload, {"id": upload_id})

    async def upload_ids(self) -> list[str]:
        return await self._column(_UPLOAD_IDS)

    async def expired_uploads(self, before: datetime) -> list[str]:
        # Through the transaction path, not reads.py: the driver, not raw SQL, must bind the datetime.
        return await self._transaction(_ids_updated_before, before)

    # Manifests and tags

    async def get_manifest(self, repository: str, reference: str) -> ManifestRecord | None:
        query = _MANIFEST_BY_DIGEST if ":" in reference else _MANIFEST_BY_TAG
        row = await self._first(query, repository=repository, reference=reference)
        return ManifestRecord(*row) if row else None

    async def put_manifest(
        self,
        repository: str,
        put: ManifestPut,
        guard: PutGuard | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        await self._transaction(self._put_manifest, repository, put, guard, outbox)

    def _put_manifest(
        self,
        conn: Connection,
        repository: str,
        put: ManifestPut,
        guard: PutGuard | None,
        outbox: Sequence[OutboxEntry],
    ) -> None:
        record, writes = put.record, self._writes
        repo_id = self._repository_id(conn, repository, create=True)
        missing_blobs = _missing(conn, writes.linked_blobs, repo_id, put.blobs)
        missing_manifests = _missing(conn, writes.present_manifests, repo_id, put.manifests)
        if missing_blobs or missing_manifests:
            raise MissingReferences(missing_blobs, missing_manifests)
        if guard is not None:
            assert repo_id is not None
            policies.check_fixed_tags(conn, repo_id, guard.fixed_tags & set(put.tags), record.digest)
            policies.check_quotas(conn, guard.quotas, put.blobs)
        values = {
            "repository_id": repo_id,
            "digest": record.digest,
            "media_type": record.media_type,
            "size": record.size,
            "artifact_type": record.artifact_type,
            "subject": record.subject,
            "annotations": record.annotations,
            "payload": record.payload,
        }
        manifest_id = self._record_manifest(conn, values)
        references = [{"manifest_id": manifest_id, "digest": d, "is_manifest": False} for d in put.blobs]
        references += [{"manifest_id": manifest_id, "digest": d, "is_manifest": True} for d in put.manifests]
        if references:
            conn.execute(writes.add_reference, references)
        if put.tags:
            tag = {"repository_id": repo_id, "manifest_id": manifest_id, "now": utcnow()}
            conn.execute(writes.set_tag, [{**tag, "name": name} for name in put.tags])
        write_entries(conn, outbox)

    def _record_manifest(self, conn: Connection, values: dict[str, Any]) -> int:
        """Insert the manifest's row, or hold the one there (a push of the same bytes again, to tag it);
        a collector may delete that one as we look (PostgreSQL), and then we insert it afresh."""
        key = {"repository_id": values["repository_id"], "digest": values["digest"]}
        for _ in range(RECORD_ATTEMPTS):
            manifest_id = conn.scalar(self._writes.add_manifest, values) or conn.scalar(
                self._writes.hold_manifest, key
            )
            if manifest_id is not None:
                return manifest_id
        raise RuntimeError(f"manifest {values['digest']} kept disappearing while it was being recorded")

    async def delete_manifest(
        self,
        repository: str,
        digest: str,
        fixed: Callable[[str], bool] | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> bool:
        return await self._transaction(self._delete_manifest, repository, digest, fixed, outbox)

    def _delete_manifest(
        self,
        conn: Connection,
        repository: str,
        digest: str,
        fixed: Callable[[str], bool] | None,
        outbox: Sequence[OutboxEntry],
    ) -> bool:
        repo_id = self._repository_id(conn, repository)
        if repo_id is None:
            return False
        manifest_id = conn.scalar(self._writes.manifest_id, {"repository_id": repo_id, "digest": digest})
        if manifest_id is None:
            return False
        policies.check_deletable(conn, manifest_id, fixed, digest)
        policies.delete_manifest_rows(conn, self._writes, manifest_id)
        return _reported(conn, True, outbox)

    async def delete_tag(self, repository: str, tag: str, outbox: Sequence[OutboxEntry] = ()) -> bool:
        return await self._transaction(self._delete_tag, repository, tag, outbox)

    def _delete_tag(self, conn: Connection, repository: str, tag: str, outbox: Sequence[OutboxEntry]) -> bool:
        repo_id = self._repository_id(conn, repository)
        if repo_id is None:
            return False
        result = conn.execute(self._writes.delete_tag, {"repository_id": repo_id, "name": tag})
        return _reported(conn, result.rowcount > 0, outbox)

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str] | None:
        tags = await self._column(_TAGS, repository=repository, last=last or "", limit=_limit(limit))
        if not tags and await self._first(_REPOSITORY, repository=repository) is None:
            return None
        return tags

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        return await self._column(_REPOSITORIES, last=last or "", limit=_limit(limit))

    async def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        rows = await self._rows(_REFERRERS, repository=repository, subject=subject)
        return [ManifestRecord(*row) for row in rows]

    # Garbage collection

    async def unreferenced_blobs(self, linked_before: datetime) -> list[str]:
        # Through the transaction path, not reads.py: the driver, not raw SQL, must bind the datetime.
        return await self._transaction(_scalars, _UNREFERENCED_BLOBS, {"linked_before": linked_before})

    async def forget_blobs(
        self, digests: Sequence[str], linked_before: datetime, delete_after: datetime
    ) -> list[tuple[str, int]]:
        return await self._transaction(self._forget_blobs, digests, linked_before, delete_after)

    def _forget_blobs(
        self, conn: Connection, digests: Sequence[str], linked_before: datetime, delete_after: datetime
    ) -> list[tuple[str, int]]:
        forgotten = []
        for digest in digests:
            params = {"digest": digest, "linked_before": linked_before, "delete_after": delete_after}
            size = conn.scalar(self._writes.lock_blob, params)
            if size is None or conn.execute(self._writes.garbage_blob, params).first() is None:
                continue
            conn.execute(self._writes.unlink_everywhere, params)
            conn.execute(self._writes.forget_blob, params)
            conn.execute(self._writes.queue_delete, params)
            forgotten.append((digest, size))
        return forgotten

    async def garbage_manifests(self, created_before: datetime, untagged: bool) -> list[tuple[str, str]]:
        params = {"created_before": created_before, "untagged": untagged}
        rows = await self._transaction(_all_rows, _GARBAGE_MANIFESTS, params)
        return [(name, digest) for name, digest in rows]

    async def forget_manifest(
        self, repository: str, digest: str, created_before: datetime, untagged: bool
    ) -> bool:
        return await self._transaction(self._forget_manifest, repository, digest, created_before, untagged)

    def _forget_manifest(
        self, conn: Connection, repository: str, digest: str, created_before: datetime, untagged: bool
    ) -> bool:
        manifest_id = conn.scalar(self._writes.lock_manifest, {"repository": repository, "digest": digest})
        if manifest_id is None:
            return False
        params = {"manifest_id": manifest_id, "created_before": created_before, "untagged": untagged}
        if conn.execute(self._writes.garbage_manifest, params).first() is None:
            return False
        conn.execute(self._writes.delete_references_of, params)
        conn.execute(self._writes.delete_manifest, params)
        return True

    async def hold_bytes(self, hold: BytesHold) -> None:
        await self._transaction(self._hold_bytes, hold)

    def _hold_bytes(self, conn: Connection, hold: BytesHold) -> None:
        conn.execute(self._writes.queue_delete, {"digest": hold.digest, "delete_after": hold.until})

    async def queue_orphan(self, digest: str, delete_after: datetime) -> bool:
        return await self._transaction(self._queue_orphan, digest, delete_after)

    def _queue_orphan(self, conn: Connection, digest: str, delete_after: datetime) -> bool:
        if conn.scalar(_BLOB_ANYWHERE, {"digest": digest}) is not None:
            return False
        params = {"digest": digest, "delete_after": delete_after}
        return conn.execute(self._writes.queue_orphan, params).rowcount > 0

    async def delete_due_bytes(
        self, now: datetime, delete: Callable[[str], Awaitable[None]], batch: int
    ) -> list[str]:
        deleted: list[str] = []
        while True:
            if self._sqlite:
                loop = asyncio.get_running_loop()
                taken = await self._transaction(self._delete_due_sync, now, delete, batch, loop)
            else:
                taken = await self._delete_due_async(now, delete, batch)
            if taken is None:
                return deleted
            deleted += taken

    def _delete_due_sync(
        self,
        conn: Connection,
        now: datetime,
        delete: Callable[[str], Awaitable[None]],
        batch: int,
        loop: asyncio.AbstractEventLoop,
    ) -> list[str] | None:
        """SQLite: on the writer thread, inside the write transaction that keeps every writer (and so
        every `hold_bytes`) out until the store has deleted the bytes; `delete` runs on the event loop
        meanwhile, and must not itself wait for an index write."""
        due = list(conn.scalars(self._writes.due_deletes, {"now": now, "batch": batch}))
        if not due:
            return None
        gone = [digest for digest in due if conn.scalar(_BLOB_ANYWHERE, {"digest": digest}) is None]
        asyncio.run_coroutine_threadsafe(_delete_all(delete, gone), loop).result()
        conn.execute(self._writes.unqueue_delete, [{"digest": digest} for digest in due])
        return gone

    async def _delete_due_async(
        self, now: datetime, delete: Callable[[str], Awaitable[None]], batch: int
    ) -> list[str] | None:
        """PostgreSQL: the queue rows stay locked (FOR UPDATE, skipped by other collectors) across the
        store's deletes, so a writer's `hold_bytes` waits until the bytes are gone and publishes after."""
        assert self._async_engine is not None
        async with self._async_engine.begin() as conn:
            due = list(await conn.scalars(self._writes.due_deletes, {"now": now, "batch": batch}))
            if not due:
                return None
            gone = [digest for digest in due if await conn.scalar(_BLOB_ANYWHERE, {"digest": digest}) is None]
            await _delete_all(delete, gone)
            await conn.execute(self._writes.unqueue_delete, [{"digest": digest} for digest in due])
            return gone

    async def due_deletes(self, now: datetime) -> int:
        # Through the transaction path, not reads.py: the driver, not raw SQL, must bind the datetime.
        return await self._transaction(_scalar, _DUE_DELETES, {"now": now})

    @contextlib.asynccontextmanager
    async def collector_lock(self) -> AsyncIterator[bool]:
        if self._async_engine is None:
            with _file_lock(_lock_path(self.url)) as held:
                yield held
            return
        # A session lock on a connection of its own, kept for the whole run: released when it closes,
        # so a collector that dies gives the lock up with its connection.
        async with self._async_engine.connect() as conn:
            held = bool(
                await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": COLLECTOR_LOCK_KEY})
            )
            try:
                yield held
            finally:
                if held:
                    await conn.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": COLLECTOR_LOCK_KEY})
                await conn.commit()

    # Scrub

    async def blob_digests(self, repository: str | None) -> list[str]:
        if repository is None:
            return await self._column(_ALL_BLOBS)
        return await self._column(_LINKED_BLOBS, repository=repository)

    async def blob_repositories(self, digest: str) -> list[str]:
        return await self._column(_BLOB_REPOSITORIES, digest=digest)

    async def drop_blob(self, digest: str) -> list[str]:
        return await self._transaction(_drop_blob, digest)

    async def stored_manifests(self, repository: str | None) -> AsyncIterator[StoredManifest]:
        query = _MANIFEST_PAGE if repository is None else _MANIFEST_PAGE_IN_REPOSITORY
        scope = {} if repository is None else {"repository": repository}
        after = 0
        while True:
            rows = await self._rows(query, after=after, limit=MANIFEST_PAGE_SIZE, **scope)
            for row_id, name, digest, payload in rows:
                yield StoredManifest(name, digest, bytes(payload))
                after = row_id
            if len(rows) < MANIFEST_PAGE_SIZE:
                return

    async def manifest_tags(self, repository: str, digest: str) -> list[str]:
        return await self._column(_MANIFEST_TAGS, repository=repository, digest=digest)

    # Lifecycle (registry/index/policies.py)

    async def retention_state(self, repository: str) -> tuple[list[TagState], list[ManifestState]]:
        # Through the transaction path, not reads.py: the driver must give the times back as datetimes.
        return await self._transaction(self._retention_state, repository)

    def _retention_state(
        self, conn: Connection, repository: str
    ) -> tuple[list[TagState], list[ManifestState]]:
        repo_id = self._repository_id(conn, repository)
        return policies.retention_state(conn, repo_id) if repo_id is not None else ([], [])

    async def remove_retained(
        self,
        repository: str,
        tags: Sequence[tuple[str, str]],
        manifests: Sequence[str],
        report: RetentionReport | None = None,
    ) -> tuple[list[str], list[str]]:
        return await self._transaction(self._remove_retained, repository, tags, manifests, report)

    def _remove_retained(
        self,
        conn: Connection,
        repository: str,
        tags: Sequence[tuple[str, str]],
        manifests: Sequence[str],
        report: RetentionReport | None,
    ) -> tuple[list[str], list[str]]:
        repo_id = self._repository_id(conn, repository)
        if repo_id is None:
            return [], []
        removed = policies.remove_retained(conn, self._writes, repo_id, tags, manifests)
        if report is not None:
            write_entries(conn, report(*removed))
        return removed

    async def quota_usage(self, repositories: str, digest: str) -> tuple[int, bool]:
        pattern = policies.glob_like(repositories)
        used = (await self._rows(policies.USAGE_TOTAL, pattern=pattern))[0][1]
        counted = (await self._rows(policies.COUNTED, pattern=pattern, digest=digest))[0][0]
        return int(used), bool(counted)

    async def usage_report(self, repositories: str) -> UsageReport:
        pattern = policies.glob_like(repositories)
        rows = await self._rows(policies.USAGE_PER_REPOSITORY, pattern=pattern)
        total = (await self._rows(policies.USAGE_TOTAL, pattern=pattern))[0]
        return policies.usage_report(rows, total)

    async def delete_repository(self, repository: str) -> bool:
        return await self._transaction(self._delete_repository, repository)

    def _delete_repository(self, conn: Connection, repository: str) -> bool:
        repo_id = self._repository_id(conn, repository)
        if repo_id is None:
            return False
        policies.delete_repository(conn, repo_id)
        return True


def _reported(conn: Connection, changed: bool, outbox: Sequence[OutboxEntry]) -> bool:
    """Whether a delete changed anything; only then are its events stored (nothing happened otherwise)."""
    if changed:
        write_entries(conn, outbox)
    return changed


def _limit(limit: int | None) -> int:
    # SQLite and PostgreSQL both want a number; -1 is "no limit" to SQLite but an error to PostgreSQL.
    return limit if limit is not None else 2**31 - 1


def _execute(conn: Connection, statement: Executable, params: dict[str, Any]) -> None:
    conn.execute(statement, params)


def _scalar(conn: Connection, statement: Executable, params: dict[str, Any]) -> Any:
    return conn.scalar(statement, params)


def _lease(seconds: float) -> dict[str, datetime]:
    now = utcnow()
    return {"now": now, "until": now + timedelta(seconds=seconds)}


def _missing(conn: Connection, query: Select, repository_id: int | None, wanted: Sequence[str]) -> list[str]:
    """Which of `wanted` the query (digests present in the repository) does not return."""
    if not wanted:
        return []
    found = set(conn.scalars(query, {"repository_id": repository_id, "digests": sorted(set(wanted))}))
    return sorted(set(wanted) - found)


def _scalars(conn: Connection, query: Select, params: dict[str, Any]) -> list[Any]:
    return list(conn.scalars(query, params))


async def _delete_all(delete: Callable[[str], Awaitable[None]], digests: list[str]) -> None:
    """The store deletes of one batch, side by side (each is a round trip on S3)."""
    await asyncio.gather(*(delete(digest) for digest in digests))


def _instant(value: datetime | str) -> datetime:
    """A time column as the reader's driver returns it (SQLite: SQLAlchemy's text form, without the
    zone; asyncpg: a datetime), as an aware UTC datetime."""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _all_rows(conn: Connection, query: Select, params: dict[str, Any]) -> list[Any]:
    return list(conn.execute(query, params).all())


def _lock_path(url: str) -> str:
    """The collector's lock file, beside the SQLite database (so in data_dir)."""
    return f"{make_url(url).database}.gc-lock"


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[bool]:
    """An flock held while the context is open: True when taken, False when another process has it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _ids_updated_before(conn: Connection, before: datetime) -> list[str]:
    return list(conn.scalars(select(Upload.id).where(Upload.updated_at < before)))


def _changed_any(conn: Connection, statement: Executable, params: dict[str, Any]) -> bool:
    """Whether the statement deleted or updated any row."""
    return conn.execute(statement, params).rowcount > 0


def _drop_blob(conn: Connection, digest: str) -> list[str]:
    repositories = list(conn.scalars(_BLOB_REPOSITORIES, {"digest": digest}))
    conn.execute(delete(RepositoryBlob).where(RepositoryBlob.digest == digest))
    conn.execute(delete(Blob).where(Blob.digest == digest))
    return repositories
