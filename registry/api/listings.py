"""Paginated listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from registry.api.common import DEFAULT_PAGE, page_request, page_response, repository, services
from registry.auth.identity import may_list
from registry.errors import ErrorCode, RegistryError
from registry.index import MetadataIndex


async def list_tags(request: Request) -> Response:
    """With `n`, one page and a Link to the next; without it, every tag, as the spec says (clients such as
    regctl read a single answer)."""
    name = repository(request)
    limit, last = page_request(request)
    index = services(request).index
    tags = await index.list_tags(name, (DEFAULT_PAGE if limit is None else limit) + 1, last)
    if tags is None:
        raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
    if limit is not None:
        return page_response(request, "tags", tags, limit, {"name": name})
    if len(tags) <= DEFAULT_PAGE:
        return JSONResponse({"name": name, "tags": tags})
    return StreamingResponse(_whole_list(index, name, tags), media_type="application/json")


async def _whole_list(index: MetadataIndex, name: str, first: list[str]) -> AsyncIterator[bytes]:
    """The tag list as JSON, read and sent DEFAULT_PAGE tags at a time, so a repository with a million tags
    costs a page of memory, not the whole list. Each page starts after the last tag sent, so a tag added
    or deleted meanwhile cannot make one appear twice or out of order."""
    yield b'{"name":' + _json(name) + b',"tags":['
    page, separator = first, b""
    while True:
        more = len(page) > DEFAULT_PAGE
        page = page[:DEFAULT_PAGE]
        if page:
            yield separator + b",".join(_json(tag) for tag in page)
            separator = b","
        if not more:
            break
        page = await index.list_tags(name, DEFAULT_PAGE + 1, page[-1]) or []
    yield b"]}"


def _json(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def catalog(request: Request) -> Response:
    """Only the repositories the caller may pull; pages are filled from as many index pages as it takes.

    The catalog is no part of the OCI spec; like Distribution's, it answers a page at a time even without
    `n`, with a Link to the rest."""
    limit, last = page_request(request)
    limit = DEFAULT_PAGE if limit is None else limit
    index = services(request).index
    names: list[str] = []
    while len(names) < limit + 1:
        page = await index.list_repositories(limit + 1, last)
        names += [name for name in page if may_list(request.scope, name)]
        if len(page) < limit + 1:
            break
        last = page[-1]
    return page_response(request, "repositories", names[: limit + 1], limit, {})
