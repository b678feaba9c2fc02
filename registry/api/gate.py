"""The gate in front of the router: one pass that matches a `/v2/` request's route, refuses changes in
read-only mode, and lets the auth check decide with what the route declares it needs.

The route is matched here once and left in the scope (`route`, `endpoint`, `path_params`), where the
router (`PrematchedRouter`), the handler and the observe layer take it instead of matching again.
Read-only mode and the access check used to be separate layers, each wrapping the request and one of
them re-matching the route table: per request that was most of the cost of the layers in front of a
handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.api.matching import RouteTable
from registry.auth.needs import KNOWN_CALLER, Access, need_of
from registry.errors import ErrorCode, RegistryError, error_response

if TYPE_CHECKING:
    from registry.auth.middleware import AccessCheck

_READ_ONLY = RegistryError(
    ErrorCode.UNSUPPORTED, {"reason": "read-only mode"}, message="the registry is read-only", status=405
)


def _guarded(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class Gate:
    def __init__(
        self, app: ASGIApp, routes: Sequence[Route], read_only: bool, check: AccessCheck | None
    ) -> None:
        self.app = app
        self.routes = RouteTable([route for route in routes if _guarded(route.path)])
        self.read_only = read_only
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.read_only and scope["method"] not in ("GET", "HEAD"):
            # `read_only: true` (while `registry gc` runs): pulls are served, every change is refused.
            await error_response(_READ_ONLY)(scope, receive, send)
            return
        access = self._match(scope)
        if self.check is None:
            await self.app(scope, receive, send)
            return
        need = (
            KNOWN_CALLER if access is None else need_of(access, scope["path_params"], scope["query_string"])
        )
        await self.check.serve(self.app, need, scope, receive, send)

    def _match(self, scope: Scope) -> Access | None:
        """Leave the route the router would serve in the scope; its access."""
        route, child = self.routes.match(scope)
        if route is None:
            return None
        scope.update(child)
        scope["route"] = route
        return getattr(route, "access", Access.NONE)


class PrematchedRouter(Router):
    """Starlette's router, serving the route the gate already matched without matching the table again."""

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("route")
        if route is not None and "endpoint" in scope:
            scope.setdefault("router", self)
            await route.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)
