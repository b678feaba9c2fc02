"""Blob reads and deletes: `HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from registry.api.common import digest_param, repository, services
from registry.errors import ErrorCode, RegistryError

# At most 19 digits an offset: that is past any blob, and int() refuses numbers over 4300 digits long; a
# longer one makes the header one we ignore (RFC 9110 lets a server), as for a multi-range.
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


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
    name, digest = repository(request), digest_param(request)
    blobs = services(request).blobs
    size = await blobs.size(name, digest)
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
        "Content-Type": "application/octet-stream",
    }
    wanted = _byte_range(request.headers.get("range"), size)
    start, end = wanted or (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(blobs.read(digest, start, end), status_code=status, headers=headers)


async def delete_blob(request: Request) -> Response:
    name, digest = repository(request), digest_param(request)
    await services(request).blobs.delete(name, digest)
    return Response(status_code=202, headers={"Docker-Content-Digest": str(digest), "Content-Length": "0"})
