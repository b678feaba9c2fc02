"""The S3 blob store: one bucket shared by any number of stateless registry processes.

Layout under the key prefix:

    <prefix>
      blobs/
        sha256/
          ab/
            abcdef0123...        one committed blob, named by its digest, written only once verified
        sha512/...
      uploads/
        <session id>/
          state                  JSON: the multipart upload's id, its parts (number, ETag, size), the
                                 session's size and the key of its tail; rewriting it is the one step
                                 that makes a write of a request count
          tail.<random>          the last bytes (under 5 MiB, S3's smallest part) not yet sent as a part
          data                   the assembled bytes, between completing the multipart upload and the
                                 verified copy to `blobs/`
      ingest/
        <random id>              a blob arriving in one request (POST ?digest=), as a multipart upload
                                 then its assembled object; anything old here was left by a crash, and
                                 is removed (uploads aborted) by `purge_ingest`
      quarantine/
        sha256/
          abcdef0123....<time>   a blob `registry scrub` found corrupt, copied aside (UTC timestamp)

Nothing is kept on local disk, so a chunked upload may hit a different process on each request. Bytes
are hashed as they arrive; the running sha256 stays in the process that received them, and a commit
anywhere else (or with another algorithm) re-reads the assembled object instead. boto3 is synchronous:
every call runs in a worker thread, and memory stays bounded by a few parts whatever the blob size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from registry.errors import ErrorCode, RegistryError
from registry.storage.base import BlobUnreadable
from registry.storage.naming import parse_blob_name, quarantine_name
from registry.types import Digest

if TYPE_CHECKING:
    from registry.config import Settings

# S3's smallest part (all but the last); bytes below it wait in the session's tail object.
MIN_PART = 5 * 1024 * 1024
# Parts sent while a request streams: S3 allows 10,000 parts, so 8 MiB parts cap a blob at ~78 GiB.
PART_SIZE = 8 * 1024 * 1024
READ_PIECE = 8 * 1024 * 1024
# CopyObject's limit; larger objects are copied in ranges with UploadPartCopy.
MAX_COPY = 5 * 1024**3
COPY_PART = 1024**3
MAX_POOL_CONNECTIONS = 64
# Seconds a redirected pull's presigned URL stays valid (Distribution's S3 driver signs for 20 minutes).
REDIRECT_EXPIRY = 1200
MAX_CACHED_HASHERS = 4096


class _HashState:
    """A running sha256 over the first `offset` bytes of a session, as left by write claim `generation`
    (see BlobStore.open_upload)."""

    def __init__(self, generation: int = 0) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.generation = generation


@dataclass
class _Part:
    number: int
    etag: str
    size: int


@dataclass
class _Session:
    """What `uploads/<id>/state` holds."""

    size: int = 0
    multipart: str | None = None
    parts: list[_Part] = field(default_factory=list)
    tail: str | None = None

    @property
    def tail_size(self) -> int:
        return self.size - sum(part.size for part in self.parts)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _Session:
        raw = json.loads(data)
        return cls(raw["size"], raw["multipart"], [_Part(**part) for part in raw["parts"]], raw["tail"])


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3Store:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        access_key: str = "",
        secret_key: str = "",
        redirect: bool = False,
    ) -> None:
        self.bucket = bucket
        self.redirect = redirect
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(
            max_pool_connections=MAX_POOL_CONNECTIONS,
            retries={"mode": "standard"},
            # Other S3 implementations (MinIO, Ceph, moto) expect path-style addressing.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # Digests are checked here; per-request CRCs would hash every byte a second time.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=config,
        )
        self._hashes: OrderedDict[str, _HashState] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        return cls(
            settings.storage.s3.bucket,
            prefix=settings.storage.s3.rootdirectory,
            endpoint_url=settings.storage.s3.regionendpoint,
            region=settings.storage.s3.region,
            access_key=settings.storage.s3.accesskey,
            secret_key=settings.storage.s3.secretkey,
            redirect=not settings.storage.redirect.disable,
        )

    def blob_key(self, digest: Digest) -> str:
        return f"{self.prefix}blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def upload_key(self, upload_id: str, name: str) -> str:
        return f"{self.prefix}uploads/{upload_id}/{name}"

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._client, method), Bucket=self.bucket, **kwargs)

    async def check(self) -> None:
        # Listing needs no more permission than the scrub's walk, and fails on a missing bucket,
        # wrong credentials or an unreachable endpoint.
        await self._call("list_objects_v2", Prefix=self.prefix, MaxKeys=1)

    async def stat(self, digest: Digest) -> int | None:
        try:
            head = await self._call("head_object", Key=self.blob_key(digest))
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return head["ContentLength"]

    def local_path(self, digest: Digest) -> None:
        """Objects have no local file: pulls stream through the server."""
        return None

    def redirect_url(self, digest: Digest) -> str | None:
        """With `storage.redirect.disable: false`: a presigned GET of the object, signed here without
        a request to S3."""
        if not self.redirect:
            return None
        params = {"Bucket": self.bucket, "Key": self.blob_key(digest)}
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=REDIRECT_EXPIRY)

    async def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Ranged GETs of one piece each, the next fetched while the current one is sent.

        Separate requests rather than one long response: a slow client then holds no connection of
        the pool between pieces.
        """
        if end is not None and end <= start:
            return
        key = self.blob_key(digest)
        position = start
        pending = asyncio.ensure_future(self._get_range(key, position, end))
        try:
            while True:
                try:
                    piece, total = await pending
                except FileNotFoundError:
                    raise BlobUnreadable(digest, "no object in the bucket") from None
                if end is not None and total < end:
                    raise BlobUnreadable(digest, f"the object holds {total} bytes, the read needs {end}")
                position += len(piece)
                limit = total if end is None else min(end, total)
                if piece and position < limit:
                    pending = asyncio.ensure_future(self._get_range(key, position, end))
                if piece:
                    yield piece
                if not piece or position >= limit:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def _get_range(self, key: str, start: int, end: int | None) -> tuple[bytes, int]:
        """Bytes from `start` (at most one piece) and the object's size; past the end, no bytes."""
        last = start + READ_PIECE if end is None else min(end, start + READ_PIECE)
        return await asyncio.to_thread(self._get_range_sync, key, start, last)

    def _get_range_sync(self, key: str, start: int, stop: int) -> tuple[bytes, int]:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{stop - 1}")
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(key) from error
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                return b"", start
            raise
        data = response["Body"].read()
        total = int(response["ContentRange"].rpartition("/")[2]) if "ContentRange" in response else len(data)
        return data, total

    async def delete(self, digest: Digest) -> None:
        await self._call("delete_object", Key=self.blob_key(digest))

    async def ingest(self, chunks: AsyncIterator[bytes], expected: Digest) -> int:
        """A whole blob in one request, with no session: verified and published, or nothing kept.

        A body under one part (most configs and small layers) is hashed in memory and written with one
        PUT, and not written at all if its digest is wrong.
        """
        hasher = expected.hasher()
        buffer: list[bytes] = []
        buffered = 0
        stream = aiter(chunks)
        async for chunk in stream:
            hasher.update(chunk)
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered >= MIN_PART:
                break
        else:
            data = b"".join(buffer)
            _verify(expected, hasher.hexdigest())
            await self._call("put_object", Key=self.blob_key(expected), Body=data)
            return len(data)
        key = f"{self.prefix}ingest/{uuid.uuid4().hex}"
        multipart = (await self._call("create_multipart_upload", Key=key))["UploadId"]
        sender = _PartSender(self, key, multipart, 1)
        try:
            async for chunk in stream:
                hasher.update(chunk)
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= PART_SIZE:
                    await sender.send(b"".join(buffer))
                    buffer, buffered = [], 0
            if buffer:
                await sender.send(b"".join(buffer))
            parts = await sender.finish()
            await self._complete(key, multipart, parts)
            _verify(expected, hasher.hexdigest())
            size = sum(part.size for part in parts)
            await self._publish(key, expected, size)
            return size
        except BaseException:
            await asyncio.gather(sender.abandon(), return_exceptions=True)
            await asyncio.gather(self._abort(key, multipart), return_exceptions=True)
            raise
        finally:
            await asyncio.gather(self._call("delete_object", Key=key), return_exceptions=True)

    async def purge_ingest(self, before: float) -> int:
        """Remove single-request uploads begun before `before` (a crash left them), objects and uploads."""
        return await asyncio.to_thread(self._purge_ingest, datetime.fromtimestamp(before, UTC))

    def _purge_ingest(self, before: datetime) -> int:
        prefix = f"{self.prefix}ingest/"
        removed = 0
        for page in self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < before:
                    self._abort_sync(upload["Key"], upload["UploadId"])
                    removed += 1
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        stale = [
            entry["Key"]
            for page in pages
            for entry in page.get("Contents", [])
            if entry["LastModified"] < before
        ]
        self._delete_keys(stale)
        return removed + len(stale)

    async def create_upload(self, upload_id: str) -> None:
        await self._save_state(upload_id, _Session())

    async def open_upload(self, upload_id: str, generation: int | None = None) -> _S3Writer | None:
        try:
            response = await self._call("get_object", Key=self.upload_key(upload_id, "state"))
        except ClientError as error:
            if _missing(error):
                return None
            raise
        session = _Session.from_json(await asyncio.to_thread(response["Body"].read))
        if generation is None:
            return _S3Writer(self, upload_id, session, None, None)
        state = self._hashes.pop(upload_id, None)
        if state is not None and (state.generation != generation - 1 or state.offset != session.size):
            # Another writer came in between; the bytes will be hashed from the assembled object.
            state = None
        if state is None and session.size == 0:
            # Still empty: this writer can hash every byte itself.
            state = _HashState()
        return _S3Writer(self, upload_id, session, state, generation)

    async def delete_upload(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        await asyncio.to_thread(self._delete_upload, upload_id)

    def _delete_upload(self, upload_id: str) -> None:
        try:
            state = self._client.get_object(Bucket=self.bucket, Key=self.upload_key(upload_id, "state"))
            session = _Session.from_json(state["Body"].read())
            if session.multipart is not None:
                self._abort_sync(self.upload_key(upload_id, "data"), session.multipart)
        except ClientError as error:
            if not _missing(error):
                raise
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.upload_key(upload_id, "")
        )
        self._delete_keys([entry["Key"] for page in pages for entry in page.get("Contents", [])])

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _remember(self, upload_id: str, state: _HashState) -> None:
        self._hashes[upload_id] = state
        while len(self._hashes) > MAX_CACHED_HASHERS:
            self._hashes.popitem(last=False)

    async def _save_state(self, upload_id: str, session: _Session) -> None:
        await self._call("put_object", Key=self.upload_key(upload_id, "state"), Body=session.to_json())

    async def _complete(self, key: str, multipart: str, parts: list[_Part]) -> None:
        await self._call(
            "complete_multipart_upload",
            Key=key,
            UploadId=multipart,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )

    async def _abort(self, key: str, multipart: str) -> None:
        await asyncio.to_thread(self._abort_sync, key, multipart)

    def _abort_sync(self, key: str, multipart: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart)
        except ClientError as error:
            if not _missing(error):
                raise

    async def _publish(self, staged: str, digest: Digest, size: int) -> None:
        """Copy a verified object to its content address (server-side).

        An object already there is replaced, never trusted: it may be a corrupt copy.
        """
        await self._copy(staged, self.blob_key(digest), size)

    def _hash_object(self, key: str, algorithm: str, size: int) -> str:
        """Hash an assembled object with ranged GETs, one piece in memory at a time."""
        hasher = hashlib.new(algorithm)
        offset = 0
        while offset < size:
            piece, _ = self._get_range_sync(key, offset, min(offset + READ_PIECE, size))
            if not piece:
                break
            hasher.update(piece)
            offset += len(piece)
        return hasher.hexdigest()

    # Scrub

    async def list_blobs(self) -> AsyncIterator[Digest]:
        """One listing page (1,000 keys) per worker-thread call."""
        prefix = f"{self.prefix}blobs/"
        pages: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = await self._call("list_objects_v2", **pages)
            for entry in page.get("Contents", []):
                algorithm, _, rest = entry["Key"].removeprefix(prefix).partition("/")
                shard, _, name = rest.partition("/")
                digest = parse_blob_name(algorithm, shard, name)
                if digest is not None:
                    yield digest
            if not page.get("IsTruncated"):
                return
            pages["ContinuationToken"] = page["NextContinuationToken"]

    async def quarantine(self, digest: Digest) -> str | None:
        """Copy then delete (S3 has no rename); a crash in between leaves both, and scrub moves it again."""
        size = await self.stat(digest)
        if size is None:
            return None
        target = self.prefix + quarantine_name(digest)
        await self._copy(self.blob_key(digest), target, size)
        await self.delete(digest)
        return target

    async def _copy(self, source_key: str, target: str, size: int) -> None:
        """A server-side copy of any size: CopyObject, or UploadPartCopy ranges past its 5 GiB limit."""
        source = {"Bucket": self.bucket, "Key": source_key}
        if size <= MAX_COPY:
            await self._call("copy_object", Key=target, CopySource=source)
            return
        multipart = (await self._call("create_multipart_upload", Key=target))["UploadId"]
        try:
            responses = await asyncio.gather(
                *(
                    self._call(
                        "upload_part_copy",
                        Key=target,
                        UploadId=multipart,
                        PartNumber=number,
                        CopySource=source,
                        CopySourceRange=f"bytes={offset}-{min(offset + COPY_PART, size) - 1}",
                    )
                    for number, offset in enumerate(range(0, size, COPY_PART), start=1)
                )
            )
            parts = [
                _Part(number, response["CopyPartResult"]["ETag"], 0)
                for number, response in enumerate(responses, start=1)
            ]
            await self._complete(target, multipart, parts)
        except BaseException:
            await asyncio.gather(self._abort(target, multipart), return_exceptions=True)
            raise


class _PartSender:
    """Uploads the parts of one multipart upload, the next piece received while the last one is sent."""

    def __init__(self, store: S3Store, key: str, multipart: str, first_number: int) -> None:
        self._store = store
        self._key = key
        self._multipart = multipart
        self._next = first_number
        self._pending: asyncio.Future[_Part] | None = None
        self.parts: list[_Part] = []

    async def send(self, data: bytes) -> None:
        if self._pending is not None:
            self.parts.append(await self._pending)
        self._pending = asyncio.ensure_future(self._upload(self._next, data))
        self._next += 1

    async def _upload(self, number: int, data: bytes) -> _Part:
        response = await self._store._call(
            "upload_part", Key=self._key, UploadId=self._multipart, PartNumber=number, Body=data
        )
        return _Part(number, response["ETag"], len(data))

    async def finish(self) -> list[_Part]:
        if self._pending is not None:
            self.parts.append(await self._pending)
            self._pending = None
        return self.parts

    async def abandon(self) -> None:
        """Wait out an upload in flight, so a rollback does not race it."""
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
            self._pending = None


class _S3Writer:
    def __init__(
        self,
        store: S3Store,
        upload_id: str,
        session: _Session,
        state: _HashState | None,
        generation: int | None,
    ) -> None:
        self._store = store
        self._id = upload_id
        self._session = session
        # None when bytes of this session arrived under another writer: commit re-reads them.
        self._state = state
        # The write claim this writer works under; None for a look at the size.
        self._generation = generation
        # The tail's bytes when this writer already holds them, to spare commit a GET.
        self._tail: bytes | None = b"" if session.tail is None else None

    @property
    def size(self) -> int:
        return self._session.size

    async def _load_tail(self) -> bytes:
        if self._tail is None:
            assert self._session.tail is not None
            response = await self._store._call("get_object", Key=self._session.tail)
            self._tail = await asyncio.to_thread(response["Body"].read)
        return self._tail

    async def write(self, chunks: AsyncIterator[bytes]) -> int:
        """Stream into parts; the new state object, written last, is what makes this call count.

        Until then the previous state still names the old parts and tail, so a failure only has to
        delete what this call added (parts it sent, a multipart upload it began, a new tail).
        """
        old = self._session
        store = self._store
        hasher = None if self._state is None else self._state.hasher.copy()
        multipart = old.multipart
        sender: _PartSender | None = None
        new_tail: str | None = None

        async def part_sender() -> _PartSender:
            nonlocal multipart, sender
            if sender is None:
                if multipart is None:
                    created = await store._call("create_multipart_upload", Key=self._data_key)
                    multipart = created["UploadId"]
                first = old.parts[-1].number + 1 if old.parts else 1
                sender = _PartSender(store, self._data_key, multipart, first)
            return sender

        received = 0
        try:
            buffer = [await self._load_tail()] if old.tail_size else []
            buffered = old.tail_size
            async for chunk in chunks:
                if not chunk:
                    continue
                if hasher is not None:
                    hasher.update(chunk)
                received += len(chunk)
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= PART_SIZE:
                    await (await part_sender()).send(b"".join(buffer))
                    buffer, buffered = [], 0
            if not received:
                return 0
            remainder = b"".join(buffer)
            if len(remainder) >= MIN_PART:
                await (await part_sender()).send(remainder)
                remainder = b""
            parts = list(old.parts) if sender is None else [*old.parts, *(await sender.finish())]
            if remainder:
                new_tail = store.upload_key(self._id, f"tail.{uuid.uuid4().hex}")
                await store._call("put_object", Key=new_tail, Body=remainder)
            session = _Session(old.size + received, multipart, parts, new_tail)
            await store._save_state(self._id, session)
        except BaseException:
            if sender is not None:
                await asyncio.gather(sender.abandon(), return_exceptions=True)
            if multipart is not None and old.multipart is None:
                await asyncio.gather(store._abort(self._data_key, multipart), return_exceptions=True)
            if new_tail is not None:
                await asyncio.gather(store._call("delete_object", Key=new_tail), return_exceptions=True)
            raise
        if old.tail is not None:
            await store._call("delete_object", Key=old.tail)
        self._session = session
        self._tail = remainder
        if self._state is not None and hasher is not None:
            self._state.hasher = hasher
            self._state.offset = session.size
        return received

    @property
    def _data_key(self) -> str:
        return self._store.upload_key(self._id, "data")

    async def commit(self, expected: Digest) -> int:
        """Assemble, verify, then copy to the content address; on a mismatch the session is deleted."""
        store = self._store
        session = self._session
        tail = await self._load_tail() if session.tail_size else b""
        try:
            if session.multipart is None:
                # Under one part: the whole blob is the tail, already in memory.
                _verify(expected, hashlib.new(expected.algorithm, tail).hexdigest())
                await store._call("put_object", Key=store.blob_key(expected), Body=tail)
            else:
                parts = list(session.parts)
                if tail:
                    sender = _PartSender(store, self._data_key, session.multipart, parts[-1].number + 1)
                    await sender.send(tail)
                    parts += await sender.finish()
                await store._complete(self._data_key, session.multipart, parts)
                if expected.algorithm == "sha256" and self._state is not None:
                    actual = self._state.hasher.hexdigest()
                else:
                    actual = await asyncio.to_thread(
                        store._hash_object, self._data_key, expected.algorithm, session.size
                    )
                _verify(expected, actual)
                await store._publish(self._data_key, expected, session.size)
        except RegistryError:
            await store.delete_upload(self._id)
            raise
        await store.delete_upload(self._id)
        return session.size

    async def close(self) -> None:
        if self._state is not None and self._generation is not None:
            self._state.generation = self._generation
            self._store._remember(self._id, self._state)


def _verify(expected: Digest, actual_hex: str) -> None:
    if actual_hex != expected.hex:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID,
            {"expected": str(expected), "actual": f"{expected.algorithm}:{actual_hex}"},
        )
