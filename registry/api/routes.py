"""The one route table: the `/v2/` API, the token service, the API's OpenAPI description, and the
operator's health, metrics and admin routes.

Repository names contain slashes, hence `{name:path}`. Each row declares the access it needs
(`registry.auth.needs.Access`); the gate in front of the router matches the row once and the auth
layer reads the declaration from it. Only `/v2/` is guarded, so the operator's routes need no token (a
scrape's own credentials, when asked for, are checked by /metrics itself; an administrator's by the
/admin/ handlers). Route names (the handlers' names) are the metrics' `route` label."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.api import admin, base, blobs, listings, manifests, openapi, referrers, uploads
from registry.api.common import Handler
from registry.auth import TOKEN_PATH
from registry.auth.needs import Access
from registry.observe import endpoints

_NAME = "/v2/{name:path}"


class ApiRoute(Route):
    """A row of the table: path, handler, methods, and what the caller needs."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], methods: Sequence[str], access: Access
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.access = access


def _token_service(name: str) -> Handler:
    """A token-service handler whose module (JWTs, password hashing) loads on the first token request:
    with authentication off, never, which keeps every worker process smaller."""

    async def handler(request: Request) -> Response:
        return await getattr(import_module("registry.api.token"), name)(request)

    handler.__name__ = name
    return handler


ROUTES: list[ApiRoute] = [
    ApiRoute("/v2/", base.version_check, ["GET"], Access.KNOWN),
    ApiRoute("/v2/_catalog", listings.catalog, ["GET"], Access.CATALOG),
    ApiRoute(f"{_NAME}/tags/list", listings.list_tags, ["GET"], Access.PULL),
    ApiRoute(f"{_NAME}/manifests/{{reference}}", manifests.get_manifest, ["GET", "HEAD"], Access.PULL),
    ApiRoute(f"{_NAME}/manifests/{{reference}}", manifests.put_manifest, ["PUT"], Access.PUSH),
    ApiRoute(f"{_NAME}/manifests/{{reference}}", manifests.delete_manifest, ["DELETE"], Access.DELETE),
    ApiRoute(f"{_NAME}/blobs/uploads/", uploads.start_upload, ["POST"], Access.MOUNT),
    ApiRoute(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.upload_status, ["GET"], Access.UPLOAD),
    ApiRoute(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.append_chunk, ["PATCH"], Access.UPLOAD),
    ApiRoute(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.finish_upload, ["PUT"], Access.UPLOAD),
    ApiRoute(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.cancel_upload, ["DELETE"], Access.UPLOAD),
    ApiRoute(f"{_NAME}/blobs/{{digest}}", blobs.get_blob, ["GET", "HEAD"], Access.PULL),
    ApiRoute(f"{_NAME}/blobs/{{digest}}", blobs.delete_blob, ["DELETE"], Access.DELETE),
    ApiRoute(f"{_NAME}/referrers/{{digest}}", referrers.list_referrers, ["GET"], Access.PULL),
    ApiRoute(TOKEN_PATH, _token_service("get_token"), ["GET"], Access.NONE),
    ApiRoute(TOKEN_PATH, _token_service("post_token"), ["POST"], Access.NONE),
    ApiRoute(openapi.OPENAPI_PATH, openapi.get_openapi, ["GET"], Access.NONE),
    ApiRoute("/healthz", endpoints.healthz, ["GET", "HEAD"], Access.NONE),
    ApiRoute("/readyz", endpoints.readyz, ["GET", "HEAD"], Access.NONE),
    ApiRoute("/metrics", endpoints.metrics, ["GET"], Access.NONE),
    ApiRoute("/admin/usage", admin.get_usage, ["GET"], Access.NONE),
]
