"""Manifest validation, storage and lookup.

Manifests are kept as the exact bytes received (the digest covers the bytes), in the index beside what
describes them, and parsed once at push time only to validate them and to record what they reference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from registry.errors import ErrorCode, RegistryError
from registry.events import Action, Dispatcher, Event, Target
from registry.index import (
    ManifestPut,
    ManifestRecord,
    MetadataIndex,
    MissingReferences,
    QuotaExceeded,
    TagFixed,
)
from registry.lifecycle.guards import Guards
from registry.types import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    IMAGE_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_RE,
    OCI_INDEX,
    OCI_MANIFEST,
    Digest,
    is_digest,
    is_media_type,
    valid_tag,
)
from registry.untrusted_json import JSONRejected, load

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# Go clients read a descriptor's size into an int64: a larger one makes the manifest unpullable for them.
MAX_BLOB_SIZE: Final = 2**63 - 1
# Layers that live outside the registry by design and so need not have been pushed.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


def _invalid(reason: str, **detail: Any) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, {"reason": reason, **detail})


def _is_int(value: Any) -> bool:
    """JSON integers only: json.loads makes `2.0` a float and `true` a bool, which Go reads as neither."""
    return isinstance(value, int) and not isinstance(value, bool)


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} is not a descriptor")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType")
    if not isinstance(digest, str) or not _is_int(size) or not 0 <= size <= MAX_BLOB_SIZE:
        raise _invalid(f"{where} needs a digest and a size from 0 to {MAX_BLOB_SIZE}")
    if media_type is not None and not isinstance(media_type, str):
        raise _invalid(f"{where} has a malformed mediaType")
    try:
        Digest.parse(digest)
    except RegistryError as error:
        raise _invalid(f"{where} has an invalid digest", digest=digest) from error
    return value


def _descriptors(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _invalid(f"{where} must be a list")
    return [_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _tags(reference: str, extra: Sequence[str]) -> tuple[str, ...]:
    """The tags a push applies: the reference when it is a tag, else the `tag` query parameters (the spec's
    main branch), each valid, or none at all."""
    if not is_digest(reference):
        if extra:
            raise _invalid("tag parameters need a manifest pushed by digest", tags=list(extra))
        extra = [reference]
    for tag in extra:
        if not valid_tag(tag):
            raise RegistryError(ErrorCode.MANIFEST_INVALID, {"tag": tag}, message="invalid tag")
    return tuple(dict.fromkeys(extra))


def parse_manifest(
    body: bytes, content_type: str | None, reference: str, tags: Sequence[str] = ()
) -> ManifestPut:
    """Validate a pushed manifest and its tags and extract what the index records about them."""
    applied = _tags(reference, tags)
    if len(body) > MAX_MANIFEST_SIZE:
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID, {"size": len(body), "limit": MAX_MANIFEST_SIZE}, status=413
        )
    if is_digest(reference):
        claimed = Digest.parse(reference)
        digest = Digest.of(body, claimed.algorithm)
        if digest != claimed:
            raise RegistryError(ErrorCode.DIGEST_INVALID, {"expected": reference, "actual": str(digest)})
    else:
        digest = Digest.of(body)
    try:
        document = load(body)
    except JSONRejected as error:
        raise _invalid("not valid JSON", error=str(error)) from None
    if not isinstance(document, dict):
        raise _invalid("not a JSON object")

    media_type = _media_type(document, content_type)
    version = document.get("schemaVersion")
    if not _is_int(version) or version != 2:
        raise _invalid("schemaVersion must be 2")
    subject = document.get("subject")
    if subject is not None:
        subject = _descriptor(subject, "subject")["digest"]
    artifact_type = _artifact_type(document.get("artifactType"), "artifactType")
    annotations = document.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("annotations must be an object")

    blobs: list[str] = []
    children: list[str] = []
    if media_type in IMAGE_TYPES:
        config = _descriptor(document.get("config"), "config")
        blobs.append(config["digest"])
        for layer in _descriptors(document.get("layers", []), "layers"):
            if layer.get("mediaType") not in _FOREIGN_LAYER_TYPES:
                blobs.append(layer["digest"])
        if artifact_type is None and media_type == OCI_MANIFEST:
            artifact_type = _artifact_type(config.get("mediaType"), "config.mediaType")
    else:
        children = [m["digest"] for m in _descriptors(document.get("manifests"), "manifests")]
    # The index keeps the artifact type as text of at most 255 characters: a NUL, a lone surrogate or a
    # longer value would fail there, so whatever is not a media type is refused here, as the spec asks.
    if artifact_type is not None and not MEDIA_TYPE_RE.fullmatch(artifact_type):
        raise _invalid("the artifact type is not a media type", artifactType=artifact_type)

    record = ManifestRecord(
        digest=str(digest),
        media_type=media_type,
        size=len(body),
        artifact_type=artifact_type,
        subject=subject,
        annotations=json.dumps(annotations, separators=(",", ":")) if annotations else None,
        payload=body,
    )
    return ManifestPut(record, tuple(dict.fromkeys(blobs)), tuple(children), applied)


def _artifact_type(value: Any, where: str) -> str | None:
    """A media type the index keeps for the referrers API: RFC 6838's grammar keeps NUL, unpaired
    surrogates and overlong text (which PostgreSQL refuses, an internal error) out of it."""
    if value is not None and not (isinstance(value, str) and is_media_type(value)):
        raise _invalid(f"{where} must be a media type (RFC 6838)")
    return value


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    header = (content_type or "").split(";")[0].strip() or None
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if declared in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or header in (
        DOCKER_SCHEMA1,
        DOCKER_SCHEMA1_SIGNED,
    ):
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID, {"mediaType": declared or header}, message="schema 1 is not supported"
        )
    if declared and header and header in MANIFEST_TYPES and declared != header:
        raise _invalid("mediaType does not match Content-Type", mediaType=declared, contentType=header)
    media_type = declared or (header if header in MANIFEST_TYPES else None)
    if media_type is None:
        # Neither says: the shape decides, as the OCI image spec allows for both kinds.
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid("unsupported manifest media type", mediaType=media_type)
    if media_type in INDEX_TYPES and "manifests" not in document:
        raise _invalid("an index needs a manifests list")
    if media_type in IMAGE_TYPES and "config" not in document:
        raise _invalid("an image manifest needs a config")
    return media_type


def accepts(accept_headers: list[str], media_type: str) -> bool:
    """Whether a client's Accept headers admit a manifest type; no Accept at all admits everything."""
    offered = [part.split(";")[0].strip() for header in accept_headers for part in header.split(",")]
    offered = [item for item in offered if item]
    if not offered:
        return True
    major = media_type.split("/")[0] + "/*"
    return any(item in (media_type, "*/*", major) for item in offered)


class ManifestService:
    def __init__(self, index: MetadataIndex, events: Dispatcher, guards: Guards) -> None:
        self.index = index
        self.events = events
        self.guards = guards

    async def put(self, repository: str, put: ManifestPut) -> ManifestRecord:
        """Record a pushed manifest. An immutable tag may be pushed again with the digest it has (a
        retried push), never moved to another; a push over a quota is refused, recording nothing."""
        # One event per tag applied (as Distribution sends one per tagged push), or one untagged.
        events = [_manifest_event(Action.PUSH, repository, put.record, tag) for tag in put.tags or ("",)]
        guard = self.guards.for_put(repository, put.tags)
        try:
            await self.index.put_manifest(repository, put, guard, self.events.outbox(events))
        except (TagFixed, QuotaExceeded) as refused:
            raise self.guards.refusal(repository, refused) from None
        except MissingReferences as missing:
            if missing.blobs:
                raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, {"digests": missing.blobs}) from None
            raise RegistryError(
                ErrorCode.MANIFEST_UNKNOWN, {"manifests": missing.manifests}, status=400
            ) from None
        for event in events:
            self.events.emit(event)
        return put.record

    async def find(self, repository: str, reference: str, accept_headers: list[str]) -> ManifestRecord:
        """The manifest a reference names, if the client's Accept headers admit it (HEAD and GET)."""
        if is_digest(reference):
            Digest.parse(reference)
        elif not valid_tag(reference):
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"tag": reference})
        record = await self.index.get_manifest(repository, reference)
        if record is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": reference})
        if not accepts(accept_headers, record.media_type):
            raise RegistryError(
                ErrorCode.MANIFEST_UNKNOWN,
                {"mediaType": record.media_type, "reason": "the Accept header does not admit this manifest"},
            )
        return record

    def pulled(self, repository: str, reference: str, record: ManifestRecord) -> None:
        """A client read the manifest `find` gave (a GET): a pull event, as in Distribution, where a HEAD
        is none. Once per GET, a GET answered from a kept answer included."""
        tag = "" if is_digest(reference) else reference
        self.events.emit(_manifest_event(Action.PULL, repository, record, tag))

    async def delete(self, repository: str, reference: str) -> None:
        """By digest: the manifest and every tag on it. By tag: only the tag. Neither when an immutable
        tag would go."""
        if is_digest(reference):
            Digest.parse(reference)
            event = Event.now(Target.MANIFEST, Action.DELETE, repository, digest=reference)
            try:
                deleted = await self.index.delete_manifest(
                    repository, reference, self.guards.fixed(repository), self.events.outbox([event])
                )
            except TagFixed as refused:
                raise self.guards.refusal(repository, refused) from None
        elif valid_tag(reference):
            self.guards.check_tag_delete(repository, reference)
            event = Event.now(Target.TAG, Action.DELETE, repository, tag=reference)
            deleted = await self.index.delete_tag(repository, reference, self.events.outbox([event]))
        else:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": reference})
        if not deleted:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": reference})
        self.events.emit(event)

    async def referrers(
        self, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        found = []
        for record in await self.index.referrers(repository, str(subject)):
            if artifact_type is not None and record.artifact_type != artifact_type:
                continue
            descriptor: dict[str, Any] = {
                "mediaType": record.media_type,
                "digest": record.digest,
                "size": record.size,
            }
            if record.artifact_type:
                descriptor["artifactType"] = record.artifact_type
            if record.annotations:
                descriptor["annotations"] = json.loads(record.annotations)
            found.append(descriptor)
        return found


def _manifest_event(action: Action, repository: str, record: ManifestRecord, tag: str) -> Event:
    return Event.now(
        Target.MANIFEST,
        action,
        repository,
        digest=record.digest,
        media_type=record.media_type,
        size=record.size,
        tag=tag,
    )
