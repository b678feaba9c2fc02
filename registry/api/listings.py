"""Paginated listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import page_request, page_response, repository, services
from registry.auth.identity import may_list
from registry.errors import ErrorCode, RegistryError


async def list_tags(request: Request) -> Response:
    name = repository(request)
    limit, last = page_request(request)
    tags = await services(request).index.list_tags(name, limit + 1, last)
    if tags is None:
        raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
    return page_response(request, "tags", tags, limit, {"name": name})


async def catalog(request: Request) -> Response:
    """Only the repositories the caller may pull; pages are filled from as many index pages as it takes."""
    limit, last = page_request(request)
    index = services(request).index
    names: list[str] = []
    while len(names) < limit + 1:
        page = await index.list_repositories(limit + 1, last)
        names += [name for name in page if may_list(request.scope, name)]
        if len(page) < limit + 1:
            break
        last = page[-1]
    return page_response(request, "repositories", names[: limit + 1], limit, {})
