"""The S3 driver: objects are keys under a prefix in one bucket, shared by any number of processes.

A writer for path `P` streams into a multipart upload of key `P` (S3 takes parts of 5 MiB and more,
all but the last), keeping the bytes that do not fill a part yet in a tail object `P.tail.<random>`
and its bookkeeping in `P.state`: JSON naming the multipart upload, its parts (number, ETag, size),
the size and the tail. Rewriting `P.state` is the one step that makes a write count, so a writer can
be taken up by any process, and a failed write leaves the previous state intact. Nothing is kept on
local disk. boto3 is synchronous: every call runs in a worker thread, and memory stays bounded by a
few parts whatever the object size. A move is a server-side copy (ranged part copies past 5 GiB),
then a delete.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from registry.storage.drivers import Entry

# S3's smallest part (all but the last); bytes below it wait in the writer's tail object.
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


@dataclass
class _Part:
    number: int
    etag: str
    size: int


@dataclass
class _State:
    """What `P.state` holds."""

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
    def from_json(cls, data: bytes) -> _State:
        raw = json.loads(data)
        return cls(raw["size"], raw["multipart"], [_Part(**part) for part in raw["parts"]], raw["tail"])


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3Driver:
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
            # Digests are checked by the content layer; per-request CRCs would hash every byte again.
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

    def key(self, path: str) -> str:
        return self.prefix + path

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._client, method), Bucket=self.bucket, **kwargs)

    async def check(self) -> None:
        # Listing needs no more permission than the scrub's walk, and fails on a missing bucket,
        # wrong credentials or an unreachable endpoint.
        await self._call("list_objects_v2", Prefix=self.prefix, MaxKeys=1)

    async def stat(self, path: str) -> Entry | None:
        try:
            head = await self._call("head_object", Key=self.key(path))
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return Entry(path, head["ContentLength"], head["LastModified"].timestamp())

    async def read(self, path: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Ranged GETs of one piece each, the next fetched while the current one is sent.

        Separate requests rather than one long response: a slow client then holds no connection of
        the pool between pieces.
        """
        if end is not None and end <= start:
            return
        key = self.key(path)
        position = start
        pending = asyncio.ensure_future(self._get_range(key, position, end))
        try:
            while True:
                piece, total = await pending
                if end is not None and total < end:
                    raise EOFError(f"the object holds {total} bytes, the read needs {end}")
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

    async def _get(self, key: str) -> bytes:
        response = await self._call("get_object", Key=key)
        return await asyncio.to_thread(response["Body"].read)

    async def put(self, path: str, data: bytes) -> None:
        """One PUT: atomic on S3 itself."""
        await self._call("put_object", Key=self.key(path), Body=data)

    async def writer(self, path: str, *, resume: bool) -> MultipartWriter:
        state_key = self.key(path + ".state")
        if not resume:
            await self._call("put_object", Key=state_key, Body=_State().to_json())
            return MultipartWriter(self, path, _State())
        try:
            state = _State.from_json(await self._get(state_key))
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(path) from error
            raise
        return MultipartWriter(self, path, state)

    async def move(self, source: str, target: str) -> None:
        entry = await self.stat(source)
        if entry is None:
            raise FileNotFoundError(source)
        await self._copy(self.key(source), self.key(target), entry.size)
        await self.delete(source)

    async def delete(self, path: str) -> None:
        await self._call("delete_object", Key=self.key(path))

    async def list(self, prefix: str) -> AsyncIterator[Entry]:
        """One listing page (1,000 keys) per worker-thread call."""
        pages: dict[str, Any] = {"Prefix": self.key(prefix.strip("/") + "/")}
        while True:
            page = await self._call("list_objects_v2", **pages)
            for item in page.get("Contents", []):
                path = item["Key"].removeprefix(self.prefix)
                yield Entry(path, item["Size"], item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            pages["ContinuationToken"] = page["NextContinuationToken"]

    async def abort_writers(self, prefix: str, before: float, keep: Callable[[str], bool]) -> int:
        """Abort the multipart uploads below `prefix` begun before `before` that `keep` rejects."""
        return await asyncio.to_thread(self._abort_writers, prefix, datetime.fromtimestamp(before, UTC), keep)

    def _abort_writers(self, prefix: str, before: datetime, keep: Callable[[str], bool]) -> int:
        aborted = 0
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.key(prefix.strip("/") + "/")
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < before and not keep(upload["Key"].removeprefix(self.prefix)):
                    self._abort_sync(upload["Key"], upload["UploadId"])
                    aborted += 1
        return aborted

    def local_path(self, path: str) -> None:
        """Objects have no local file: pulls stream through the server."""
        return None

    def where(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    def url(self, path: str) -> str | None:
        """With `storage.redirect.disable: false`: a presigned GET of the object, signed here without
        a request to S3."""
        if not self.redirect:
            return None
        params = {"Bucket": self.bucket, "Key": self.key(path)}
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=REDIRECT_EXPIRY)

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _keys_under(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

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

    def __init__(self, driver: S3Driver, key: str, multipart: str, first_number: int) -> None:
        self._driver = driver
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
        response = await self._driver._call(
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


class MultipartWriter:
    def __init__(self, driver: S3Driver, path: str, state: _State) -> None:
        self.path = path
        self._driver = driver
        self._key = driver.key(path)
        self._state = state
        # The tail's bytes when this writer already holds them, to spare commit a GET.
        self._tail: bytes | None = b"" if state.tail is None else None

    @property
    def size(self) -> int:
        return self._state.size

    async def _load_tail(self) -> bytes:
        if self._tail is None:
            assert self._state.tail is not None
            self._tail = await self._driver._get(self._state.tail)
        return self._tail

    async def write(self, chunks: AsyncIterator[bytes], observe: Callable[[bytes], None]) -> int:
        """Stream into parts; the new state object, written last, is what makes this call count.

        Until then the previous state still names the old parts and tail, so a failure only has to
        delete what this call added (parts it sent, a multipart upload it began, a new tail).
        """
        old = self._state
        driver = self._driver
        multipart = old.multipart
        sender: _PartSender | None = None
        new_tail: str | None = None

        async def part_sender() -> _PartSender:
            nonlocal multipart, sender
            if sender is None:
                if multipart is None:
                    multipart = (await driver._call("create_multipart_upload", Key=self._key))["UploadId"]
                first = old.parts[-1].number + 1 if old.parts else 1
                sender = _PartSender(driver, self._key, multipart, first)
            return sender

        received = 0
        try:
            buffer = [await self._load_tail()] if old.tail_size else []
            buffered = old.tail_size
            async for chunk in chunks:
                if not chunk:
                    continue
                observe(chunk)
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
                new_tail = f"{self._key}.tail.{uuid.uuid4().hex}"
                await driver._call("put_object", Key=new_tail, Body=remainder)
            state = _State(old.size + received, multipart, parts, new_tail)
            await driver._call("put_object", Key=self._key + ".state", Body=state.to_json())
        except BaseException:
            if sender is not None:
                await asyncio.gather(sender.abandon(), return_exceptions=True)
            if multipart is not None and old.multipart is None:
                await asyncio.gather(driver._abort(self._key, multipart), return_exceptions=True)
            if new_tail is not None:
                await asyncio.gather(driver._call("delete_object", Key=new_tail), return_exceptions=True)
            raise
        if old.tail is not None:
            await driver._call("delete_object", Key=old.tail)
        self._state = state
        self._tail = remainder
        return received

    async def commit(self) -> None:
        """Complete the multipart upload with the tail as its last part (or PUT a lone tail)."""
        state = self._state
        tail = await self._load_tail() if state.tail_size else b""
        if state.multipart is None:
            await self._driver._call("put_object", Key=self._key, Body=tail)
        else:
            parts = list(state.parts)
            if tail:
                sender = _PartSender(self._driver, self._key, state.multipart, parts[-1].number + 1)
                await sender.send(tail)
                parts += await sender.finish()
            await self._driver._complete(self._key, state.multipart, parts)
        named = [self._key + ".state", *([state.tail] if state.tail else [])]
        await asyncio.to_thread(self._driver._delete_keys, named)

    async def publish(self, target: str) -> None:
        await self.commit()
        await self._driver.move(self.path, target)

    async def cancel(self) -> None:
        if self._state.multipart is not None:
            await self._driver._abort(self._key, self._state.multipart)
        await asyncio.to_thread(self._drop_bookkeeping)

    def _drop_bookkeeping(self) -> None:
        """Delete `P.state` and the tails, listed rather than named: a crashed write may have left one."""
        self._driver._delete_keys(self._driver._keys_under(self._key + "."))
