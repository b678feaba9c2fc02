"""The operator's JSON routes outside `/v2/`: `GET /admin/usage[?repository=GLOB]`, for administrators
(see registry/auth/admin.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.api.common import services


async def get_usage(request: Request) -> Response:
    registry = services(request)
    if registry.auth is not None:
        # Imported here: with `auth: none` no worker loads the auth modules (see Registry.build).
        from registry.auth.admin import require_admin

        await require_admin(registry.auth, request)
    usage = await registry.repositories.usage(request.query_params.get("repository") or "*")
    return JSONResponse(usage.as_json())
