"""One writer per upload session at a time, across worker processes and replicas.

Two requests appending to one session at once (two PATCHes with the same `Content-Range`) would both
write at the same offset: the stored bytes would then match neither writer's running hash, and a commit
trusting one of those hashes could publish bytes that do not hash to their digest. So every request
that writes a session's bytes first claims it in the index (a conditional update, the same on SQLite
and PostgreSQL, and so across replicas); a second writer is refused until the claim is released.

A claim is a lease, renewed while the request runs, so a writer whose process died stops blocking the
session: at once when the holder was a process on this host that no longer exists (a crash, then a
restart and a resumed upload), otherwise when its lease runs out. A writer that could not renew in
time stops writing before its lease could have passed to someone else (`fenced`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from registry.errors import ErrorCode, RegistryError
from registry.index import BytesHold, MetadataIndex, UploadBusy

LEASE_SECONDS = 60.0
RENEW_EVERY = LEASE_SECONDS / 3
# A writer stops this long before its lease could lapse: room for clock drift and a slow renewal.
SAFETY_MARGIN = 15.0


@functools.cache
def _host_key() -> str:
    """Names this kernel boot and PID namespace: two holders with the same key see the same PIDs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:16]


def _started(pid: int) -> str | None:
    """When a live process started (clock ticks since boot), which tells a reused PID from the original;
    None for no process, or a dead one not yet reaped (a zombie, whose parent died with it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields[19]


@functools.cache
def _process(pid: int) -> str:
    return f"{_host_key()}/{pid}/{_started(pid)}"


def _writer_id() -> str:
    return f"{_process(os.getpid())}/{uuid.uuid4().hex[:12]}"


def holder_is_gone(holder: str) -> bool:
    """True only when the holder certainly died: a process of this host whose PID is free or reused."""
    parts = holder.split("/")
    if len(parts) != 4 or parts[0] != _host_key() or parts[0] == "unknown" or not parts[1].isdigit():
        return False
    return _started(int(parts[1])) != parts[2]


class SessionClaim:
    """One request's exclusive right to write an upload session, renewed until released."""

    def __init__(self, index: MetadataIndex, upload_id: str, writer: str, generation: int) -> None:
        self.index = index
        self.upload_id = upload_id
        self.writer = writer
        self.generation = generation
        self._valid_until = time.monotonic() + LEASE_SECONDS - SAFETY_MARGIN
        self._lost = False
        # Set when the session itself is gone (its blob linked, which deletes the session's row):
        # then there is no claim left to give back, and no write to spend on it.
        self.ended = False
        self._keeper = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            asked = time.monotonic()
            if not await self.index.renew_upload(self.upload_id, self.writer, LEASE_SECONDS):
                self._lost = True
                return
            self._valid_until = asked + LEASE_SECONDS - SAFETY_MARGIN

    def check(self) -> None:
        if self._lost or time.monotonic() > self._valid_until:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                {"upload": self.upload_id},
                message="the upload session's write claim lapsed; resume the upload",
            )

    async def fenced(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a body through, stopping the write the moment the claim can no longer be trusted."""
        async for chunk in body:
            self.check()
            yield chunk

    async def release(self) -> bool:
        """Stop renewing and give the session back; False when the claim was no longer ours."""
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper
        if self.ended:
            return True
        return await self.index.release_upload(self.upload_id, self.writer)


async def claim_session(
    index: MetadataIndex, upload_id: str, repository: str, hold: BytesHold | None = None
) -> SessionClaim | None:
    """Claim a session for writing; None when it does not exist, UploadBusy while someone else writes.
    With `hold`, the claim also holds those bytes (see `MetadataIndex.hold_bytes`)."""
    writer = _writer_id()
    try:
        generation = await index.claim_upload(upload_id, repository, writer, LEASE_SECONDS, hold)
    except UploadBusy as busy:
        if not holder_is_gone(busy.holder):
            raise
        generation = await index.take_over_upload(upload_id, busy.holder, writer, LEASE_SECONDS)
        if generation is None:
            raise
        if hold is not None:
            await index.hold_bytes(hold)
    if generation is None:
        return None
    return SessionClaim(index, upload_id, writer, generation)
