"""The metadata index schema. The store holds bytes; these tables say which repository may see them,
and who may log in (users, their groups).

Digests are kept as `algorithm:hex` text, checked by a constraint so a malformed one cannot slip in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DIGEST_LEN = 200


def _ordered_text(length: int) -> String:
    """Text that sorts and compares bytewise, as the spec's lexical ordering means, on every database."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


DIGEST_CHECK = "{col} LIKE 'sha256:%' OR {col} LIKE 'sha512:%'"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(_ordered_text(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Blob(Base):
    """A committed blob in the store (layers, configs and manifests alike): what GC walks."""

    __tablename__ = "blobs"
    __table_args__ = (CheckConstraint(DIGEST_CHECK.format(col="digest"), name="blob_digest_format"),)

    digest: Mapped[str] = mapped_column(String(DIGEST_LEN), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RepositoryBlob(Base):
    """A blob pushed to, or mounted into, a repository: only then may that repository serve it."""

    __tablename__ = "repository_blobs"
    # Which repositories hold a digest: a mount without `from`, and garbage collection.
    __table_args__ = (Index("repository_blob_digest", "digest"),)

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), primary_key=True)
    # The last push or mount into the repository: garbage collection spares the blob for a grace period
    # after it, since a push in progress links its blobs before its manifest references them.
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Manifest(Base):
    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="manifest_repository_digest"),
        Index("manifest_subject", "repository_id", "subject"),
        CheckConstraint(DIGEST_CHECK.format(col="digest"), name="manifest_digest_format"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(DIGEST_LEN))
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    # What a referrers response needs, taken from the manifest once at push time.
    artifact_type: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(DIGEST_LEN))
    annotations: Mapped[str | None] = mapped_column(Text)
    # The exact bytes pushed (at most 4 MiB): manifests are metadata, and kept here a pull is one
    # indexed lookup, with no file to write, fsync and read back.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ManifestReference(Base):
    """A blob or child manifest a manifest points at; what keeps it alive through GC."""

    __tablename__ = "manifest_references"
    # Whether anything references a blob: garbage collection asks it of every blob.
    __table_args__ = (Index("manifest_reference_digest", "digest"),)

    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LEN), primary_key=True)
    is_manifest: Mapped[bool] = mapped_column(Boolean)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("tag_manifest", "manifest_id"),)

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(_ordered_text(128), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingDelete(Base):
    """Bytes the store may lose after `delete_after`: a forgotten blob's, an orphan's, or (an hour ahead)
    a hold a writer takes before publishing, so that a collector never deletes what is being published."""

    __tablename__ = "gc_pending_deletes"
    __table_args__ = (Index("gc_pending_due", "delete_after"),)

    digest: Mapped[str] = mapped_column(String(DIGEST_LEN), primary_key=True)
    delete_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Upload(Base):
    """An open upload session; its bytes are staged in the store under the same id."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # The one request allowed to write the session's bytes, until `lease_until` unless it renews; two
    # writers at once could leave bytes that no hash kept by either of them describes.
    writer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Counts claims, so a process can tell whether the running hash it kept is still about the bytes
    # stored: only when the claim before the current one was its own.
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class User(Base):
    """Someone who logs in: a person, or a service account (CI) whose secret the registry generated."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(_ordered_text(64), unique=True)
    # A self-describing KDF string (`$scrypt$...`); the password itself is never stored.
    password_hash: Mapped[str] = mapped_column(String(255))
    service_account: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Group(Base):
    """A named set of users that access rules can name instead of each member."""

    __tablename__ = "user_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(_ordered_text(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = (Index("group_member_user", "user_id"),)

    group_id: Mapped[int] = mapped_column(ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class OutboxEvent(Base):
    """An event for the webhooks, written in the transaction of the change it reports (a crash loses
    neither or both); `payload` is the envelope's event object, as JSON text."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    repository: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventDelivery(Base):
    """One event owed to one endpoint: pending until sent (then deleted), failed when refused by a full
    backlog. A worker claims it until `claimed_until`; a claim left by a dead worker simply expires."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        # The worker's question: the oldest pending events per endpoint and repository.
        Index("event_delivery_queue", "endpoint", "state", "repository", "event_id"),
        CheckConstraint("state IN ('pending', 'failed')", name="event_delivery_state"),
    )

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("event_outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    endpoint: Mapped[str] = mapped_column(String(255), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
