"""What every handler shares: the registry's services, parsed path parts, pagination, error bodies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.errors import ErrorCode, RegistryError, error_response
from registry.types import Digest, validate_name

if TYPE_CHECKING:
    from registry.app import Registry

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
# Without `n`, the catalog answers at most this many entries and a Link to the rest; the tag list answers
# everything, read from the index this many at a time.
DEFAULT_PAGE = 1000

Handler = Callable[[Request], Awaitable[Response]]


class PreparedResponse(Response):
    """A response whose headers come complete, as the ASGI message carries them (lower-case bytes):
    starlette's header assembly (a dict, encoding, length and type filled in) was a few percent of the
    hottest small answers, the manifest GET and the blob HEAD."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = headers


def services(request: Request) -> Registry:
    return request.app.state.registry


def repository(request: Request) -> str:
    return validate_name(request.path_params["name"])


def digest_param(request: Request, key: str = "digest") -> Digest:
    return Digest.parse(request.path_params[key])


def _page_last(request: Request) -> str | None:
    """`last`, which no name or tag could be if it holds a NUL (and PostgreSQL refuses it in a query)."""
    last = request.query_params.get("last") or None
    if last is not None and "\x00" in last:
        raise RegistryError(ErrorCode.UNSUPPORTED, {"last": last}, message="last must not contain NUL")
    return last


def page_request(request: Request) -> tuple[int | None, str | None]:
    """`n` (None when the client did not ask for a page size) and `last`."""
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return None, _page_last(request)
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if limit < 0:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, {"n": raw})
    return min(limit, DEFAULT_PAGE * 10), _page_last(request)


def page_response(request: Request, key: str, items: list[str], limit: int, extra: dict) -> Response:
    """Answer one page; `items` holds up to limit + 1 entries, the extra one meaning there are more."""
    headers = {}
    if len(items) > limit:
        items = items[:limit]
        if items:
            query = urlencode({"n": limit, "last": items[-1]})
            headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return JSONResponse({**extra, key: items}, headers=headers)


async def registry_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(exc)


async def http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route matched) in the spec's error format."""
    assert isinstance(exc, HTTPException)
    code = ErrorCode.NAME_UNKNOWN if exc.status_code == 404 else ErrorCode.UNSUPPORTED
    return error_response(RegistryError(code, {"reason": exc.detail}, status=exc.status_code))


def require_deletes(request: Request) -> None:
    """`storage.delete.enabled: false` refuses deletes as Distribution does: 405 UNSUPPORTED."""
    if not services(request).settings.storage.delete.enabled:
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            {"reason": "storage.delete.enabled is false"},
            message="deletes are disabled on this registry",
            status=405,
        )
