"""Blob reads and deletes: `HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`."""

from __future__ import annotations

import functools
import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from registry.api.common import PreparedResponse, digest_param, repository, require_deletes, services
from registry.api.kept import keep
from registry.api.pathsend import PATHSEND, PathSendResponse
from registry.errors import ErrorCode, RegistryError

# ASCII digits only (\d takes any script's), and at most int64's 19, which int() converts in bounded time.
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a Range header asks for; None serves the whole blob, as for a multi-range."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        raise RegistryError(
            ErrorCode.RANGE_INVALID,
            {"range": header, "size": size},
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


async def get_blob(request: Request) -> Response:
    """GET and HEAD. A HEAD answers from the index alone, one lookup, and so does not notice a blob
    whose bytes the store lost; a GET reads the first piece before answering, and does."""
    name, digest = repository(request), digest_param(request)
    blobs = services(request).blobs
    if request.method == "HEAD":
        size, fresh_until = await blobs.found(name, digest)
        keep(request, until=fresh_until)
    else:
        size = await blobs.size(name, digest)
    wanted = _byte_range(request.headers.get("range"), size)
    start, end = wanted or (0, size)
    quoted = str(digest).encode()
    headers = [
        (b"docker-content-digest", quoted),
        (b"etag", b'"' + quoted + b'"'),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", b"max-age=31536000"),
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(end - start).encode()),
    ]
    status = 200
    if wanted is not None:
        status = 206
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
    if request.method == "HEAD":
        return PreparedResponse(status, headers)
    url = blobs.redirect(name, digest, size)
    if url is not None:
        # The client repeats the request (Range included) at the bucket, as with Distribution's redirect.
        moved = {"Location": url, "Docker-Content-Digest": str(digest), "Content-Length": "0"}
        return Response(status_code=307, headers=moved)
    # A small blob is sent from memory; a larger one as a file, whole (the pathsend extension has no
    # byte range); a range of it streams.
    small = await blobs.small(name, digest, size, start, end)
    if small is not None:
        if wanted is None:
            keep(request, replay=functools.partial(blobs.pulled, name, digest, size))
        return PreparedResponse(status, headers, small)
    if wanted is None and PATHSEND in request.scope.get("extensions", {}):
        path = await blobs.local_file(name, digest, size)
        if path is not None:
            return PathSendResponse(path, headers)
    body = await blobs.open(name, digest, start, end)
    streaming = StreamingResponse(body, status_code=status)
    streaming.raw_headers = headers  # complete already, as PreparedResponse's
    return streaming


async def delete_blob(request: Request) -> Response:
    require_deletes(request)
    name, digest = repository(request), digest_param(request)
    await services(request).blobs.delete(name, digest)
    return Response(status_code=202, headers={"Docker-Content-Digest": str(digest), "Content-Length": "0"})
