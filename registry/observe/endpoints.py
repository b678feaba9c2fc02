"""The operator's routes, outside /v2/ and outside authentication: /healthz, /readyz and /metrics.

/healthz says only that the process answers (a liveness probe must not fail because a dependency did,
or the orchestrator restarts a healthy process). /readyz asks the index and the blob store, both at
once and each within CHECK_TIMEOUT, and names what failed: a 503 takes the replica out of the load
balancer until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from registry.api.common import services

log = logging.getLogger("registry")
CHECK_TIMEOUT = 5.0


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _failure(check: Callable[[], Awaitable[None]]) -> str | None:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} seconds"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


async def _background_storage_failure(request: Request) -> str | None:
    health = services(request).storage_health
    assert health is not None
    return health.failing


async def _readiness(request: Request) -> dict[str, str | None]:
    """Each readiness check's failure, or None where it passes."""
    registry = services(request)
    parts = {
        "index": _failure(registry.index.check),
        # With `health.storagedriver` on, what its background checks concluded; else asked now.
        "storage": _failure(registry.store.check)
        if registry.storage_health is None
        else _background_storage_failure(request),
    }
    outcomes = await asyncio.gather(*parts.values())
    return dict(zip(parts, outcomes, strict=True))


async def readyz(request: Request) -> Response:
    found = await _readiness(request)
    failing = {name: reason for name, reason in found.items() if reason is not None}
    if failing:
        log.warning("not ready: %s", "; ".join(f"{name}: {reason}" for name, reason in failing.items()))
        return JSONResponse({"status": "unavailable", "failing": failing}, 503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    exposition = services(request).exposition
    if exposition is None:
        return PlainTextResponse("metrics are off (metrics_enabled: false)", 404)
    if not await exposition.allows(request.headers.get("authorization")):
        return PlainTextResponse(
            "credentials required", 401, headers={"WWW-Authenticate": 'Basic realm="metrics"'}
        )
    body, content_type = await exposition.render(await _readiness(request))
    return Response(body, media_type=content_type)
