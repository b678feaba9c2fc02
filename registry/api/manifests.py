"""Manifests: `HEAD`/`GET`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import PreparedResponse, repository, require_deletes, services
from registry.api.kept import keep
from registry.errors import ErrorCode, RegistryError
from registry.services.manifests import MAX_MANIFEST_SIZE, parse_manifest


async def get_manifest(request: Request) -> Response:
    name, reference = repository(request), request.path_params["reference"]
    manifests = services(request).manifests
    record = await manifests.find(name, reference, request.headers.getlist("accept"))
    digest = record.digest.encode()
    headers = [
        (b"docker-content-digest", digest),
        (b"etag", b'"' + digest + b'"'),
        (b"content-type", record.media_type.encode()),
        (b"content-length", str(record.size).encode()),
    ]
    if request.method == "HEAD":
        keep(request)
        return PreparedResponse(200, headers)
    pulled = functools.partial(manifests.pulled, name, reference, record)
    pulled()
    keep(request, replay=pulled)
    return PreparedResponse(200, headers, record.payload)


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_MANIFEST_SIZE:
        raise RegistryError(ErrorCode.MANIFEST_INVALID, {"limit": MAX_MANIFEST_SIZE}, status=413)
    parts, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_MANIFEST_SIZE:
            raise RegistryError(ErrorCode.MANIFEST_INVALID, {"limit": MAX_MANIFEST_SIZE}, status=413)
        parts.append(chunk)
    return b"".join(parts)


async def put_manifest(request: Request) -> Response:
    name, reference = repository(request), request.path_params["reference"]
    tag_params = request.query_params.getlist("tag")
    body = await _bounded_body(request)
    put = parse_manifest(body, request.headers.get("content-type"), reference, tag_params)
    record = await services(request).manifests.put(name, put)
    headers = {
        "Location": f"/v2/{name}/manifests/{record.digest}",
        "Docker-Content-Digest": record.digest,
        "Content-Length": "0",
    }
    if record.subject:
        headers["OCI-Subject"] = record.subject
    response = Response(status_code=201, headers=headers)
    if tag_params:
        # One header per tag applied: what tells a client this registry took them all in this one request.
        for tag in put.tags:
            response.headers.append("OCI-Tag", tag)
    return response


async def delete_manifest(request: Request) -> Response:
    require_deletes(request)
    name, reference = repository(request), request.path_params["reference"]
    await services(request).manifests.delete(name, reference)
    return Response(status_code=202, headers={"Content-Length": "0"})
