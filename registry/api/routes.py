"""The one route table: the `/v2/` API, the token service, the API's OpenAPI description, and the
operator's health and metrics routes.
Repository names contain slashes, hence `{name:path}`. The auth middleware derives each request's
needed access from this same table; it guards `/v2/` only, so the operator's routes need no token (a
scrape's own credentials, when asked for, are checked by /metrics itself; an administrator's by the
/admin/ handlers). Route names (the handlers'
names) are the metrics' `route` label."""

from __future__ import annotations

from importlib import import_module

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.api import admin, base, blobs, listings, manifests, openapi, referrers, uploads
from registry.api.common import Handler
from registry.auth import TOKEN_PATH
from registry.observe import endpoints

_NAME = "/v2/{name:path}"


def _token_service(name: str) -> Handler:
    """A token-service handler whose module (JWTs, password hashing) loads on the first token request:
    with authentication off, never, which keeps every worker process smaller."""

    async def handler(request: Request) -> Response:
        return await getattr(import_module("registry.auth.token_service"), name)(request)

    handler.__name__ = name
    return handler


ROUTES: list[Route] = [
    Route("/v2/", base.version_check, methods=["GET"]),
    Route("/v2/_catalog", listings.catalog, methods=["GET"]),
    Route(f"{_NAME}/tags/list", listings.list_tags, methods=["GET"]),
    Route(f"{_NAME}/manifests/{{reference}}", manifests.get_manifest, methods=["GET", "HEAD"]),
    Route(f"{_NAME}/manifests/{{reference}}", manifests.put_manifest, methods=["PUT"]),
    Route(f"{_NAME}/manifests/{{reference}}", manifests.delete_manifest, methods=["DELETE"]),
    Route(f"{_NAME}/blobs/uploads/", uploads.start_upload, methods=["POST"]),
    Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.upload_status, methods=["GET"]),
    Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.append_chunk, methods=["PATCH"]),
    Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.finish_upload, methods=["PUT"]),
    Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.cancel_upload, methods=["DELETE"]),
    Route(f"{_NAME}/blobs/{{digest}}", blobs.get_blob, methods=["GET", "HEAD"]),
    Route(f"{_NAME}/blobs/{{digest}}", blobs.delete_blob, methods=["DELETE"]),
    Route(f"{_NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]),
    Route(TOKEN_PATH, _token_service("get_token"), methods=["GET"]),
    Route(TOKEN_PATH, _token_service("post_token"), methods=["POST"]),
    Route(openapi.OPENAPI_PATH, openapi.get_openapi, methods=["GET"]),
    Route("/healthz", endpoints.healthz, methods=["GET", "HEAD"]),
    Route("/readyz", endpoints.readyz, methods=["GET", "HEAD"]),
    Route("/metrics", endpoints.metrics, methods=["GET"]),
    Route("/admin/usage", admin.get_usage, methods=["GET"]),
]
