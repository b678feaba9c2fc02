"""`GET /openapi.json`: the API's OpenAPI description.

The document is `openapi.yaml` beside this module, completed here with the facts the code already
declares once (error codes, name, tag and digest grammars, the package version), so the description
cannot drift from what the handlers enforce. It is built on the first request and kept.
"""

from __future__ import annotations

import functools
from importlib import metadata, resources
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.errors import ErrorCode
from registry.types import DIGEST_ALGORITHMS, MAX_NAME_LENGTH, NAME_RE, TAG_RE

OPENAPI_PATH = "/openapi.json"


def _whole(pattern: str) -> str:
    """JSON Schema patterns match anywhere in a string; ours must match all of it, as `fullmatch` does."""
    return f"^(?:{pattern})$"


@functools.cache
def describe() -> dict[str, Any]:
    document = yaml.safe_load(resources.files(__package__).joinpath("openapi.yaml").read_text())
    document["info"]["version"] = metadata.version("registry")
    schemas = document["components"]["schemas"]
    schemas["RepositoryName"].update(pattern=_whole(NAME_RE.pattern), maxLength=MAX_NAME_LENGTH)
    schemas["Tag"]["pattern"] = _whole(TAG_RE.pattern)
    digests = "|".join(f"{name}:[a-f0-9]{{{length}}}" for name, length in DIGEST_ALGORITHMS.items())
    schemas["Digest"]["pattern"] = _whole(digests)
    schemas["ErrorCode"]["enum"] = [code.name for code in ErrorCode]
    return document


async def get_openapi(_request: Request) -> Response:
    return JSONResponse(describe())
