"""`GET /v2/`: the version check every client makes first."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def version_check(_request: Request) -> Response:
    return JSONResponse({})
