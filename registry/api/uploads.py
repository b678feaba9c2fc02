"""Blob upload sessions: `POST`, `PATCH`, `PUT`, `GET` and `DELETE` under `/v2/<name>/blobs/uploads/`.

The session's `Location` carries no state of its own (only the session id), so it stays valid for the
whole upload, however the client splits it and whichever worker process answers.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import repository, services
from registry.auth.identity import may_read_source, readable_repositories
from registry.errors import ErrorCode, RegistryError
from registry.types import Digest, is_valid_name

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _upload_id(request: Request) -> str:
    upload_id = request.path_params["upload_id"]
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
    return upload_id


def _session(name: str, upload_id: str, size: int, status: int) -> Response:
    return Response(
        status_code=status,
        headers={
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Docker-Upload-UUID": upload_id,
            # Inclusive end offset, no "bytes=" prefix, as Docker's clients parse it.
            "Range": f"0-{max(size - 1, 0)}",
            "Content-Length": "0",
        },
    )


def _created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


def _length(request: Request) -> int | None:
    """The body's declared length, when it gives one (a chunked body does not)."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() and len(declared) <= 19 else None


def _required_digest(request: Request) -> Digest:
    raw = request.query_params.get("digest")
    if not raw:
        raise RegistryError(ErrorCode.DIGEST_INVALID, {"reason": "the digest query parameter is required"})
    return Digest.parse(raw)


async def _mounted(request: Request, name: str, mount: str) -> Digest | None:
    """The digest mounted into `name`, or None when the client must upload the blob instead.

    A source name that is not a valid repository cannot hold the blob, and one the caller may not pull
    from must not reveal whether it does: either way, the answer is an upload session.
    """
    try:
        digest = Digest.parse(mount)
    except RegistryError:
        return None
    blobs = services(request).blobs
    source = request.query_params.get("from")
    if source is None:
        mounted = await blobs.mount_readable(name, digest, readable_repositories(request.scope))
    else:
        readable = is_valid_name(source) and may_read_source(request.scope, source)
        mounted = readable and await blobs.mount(name, digest, source)
    return digest if mounted else None


async def start_upload(request: Request) -> Response:
    name = repository(request)
    blobs = services(request).blobs
    params = request.query_params
    mount = params.get("mount")
    if mount:
        mounted = await _mounted(request, name, mount)
        if mounted is not None:
            return _created(name, mounted)
    elif "digest" in params:
        digest = _required_digest(request)
        await blobs.upload(name, digest, request.stream(), _length(request))
        return _created(name, digest)
    upload_id = await blobs.start_upload(name)
    return _session(name, upload_id, 0, 202)


async def upload_status(request: Request) -> Response:
    name, upload_id = repository(request), _upload_id(request)
    size = await services(request).blobs.upload_size(name, upload_id)
    return _session(name, upload_id, size, 204)


async def append_chunk(request: Request) -> Response:
    name, upload_id = repository(request), _upload_id(request)
    size = await services(request).blobs.append(
        name, upload_id, request.stream(), request.headers.get("content-range")
    )
    return _session(name, upload_id, size, 202)


async def finish_upload(request: Request) -> Response:
    name, upload_id = repository(request), _upload_id(request)
    digest = _required_digest(request)
    await services(request).blobs.finish(
        name, upload_id, digest, request.stream(), request.headers.get("content-range"), _length(request)
    )
    return _created(name, digest)


async def cancel_upload(request: Request) -> Response:
    name, upload_id = repository(request), _upload_id(request)
    await services(request).blobs.cancel(name, upload_id)
    return Response(status_code=204)
