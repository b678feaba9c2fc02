"""The gate in front of the router: one pass that matches a `/v2/` request's route, refuses changes in
read-only mode, and lets the auth check decide with what the route declares it needs.

The route is matched here once and left in the scope (`route`, `endpoint`, `path_params`), where the
handler and the observe layer take it instead of matching again. Read-only mode and the access check
used to be separate layers, each wrapping the request and one of them re-matching the route table: per
request that was most of the cost of the layers in front of a handler.

A matched route's handler is then called here, its errors answered by the app's own exception
handlers: starlette's exception layer, router and route wrapper (three more wrappings of `send`, two
of them catching the same exceptions) added about a fifth of a manifest GET's CPU. Requests no route
takes fully (a 404, a 405) still go through them, to starlette's answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.api.matching import RouteTable
from registry.auth.needs import KNOWN_CALLER, Access, need_of
from registry.errors import ErrorCode, RegistryError, error_response

if TYPE_CHECKING:
    from registry.auth.middleware import AccessCheck

_READ_ONLY = RegistryError(
    ErrorCode.UNSUPPORTED, {"reason": "read-only mode"}, message="the registry is read-only", status=405
)


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def _guarded(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[Route],
        read_only: bool,
        check: AccessCheck | None,
        exception_handlers: Mapping[type[Exception], ExceptionHandler],
    ) -> None:
        self.app = app
        self.routes = RouteTable([route for route in routes if _guarded(route.path)])
        self.read_only = read_only
        self.check = check
        self.handlers = tuple(exception_handlers.items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.read_only and scope["method"] not in ("GET", "HEAD"):
            # `read_only: true` (while `registry gc` runs): pulls are served, every change is refused.
            await error_response(_READ_ONLY)(scope, receive, send)
            return
        access = self._match(scope)
        inner = self.app if access is None else self._handle
        if self.check is None:
            await inner(scope, receive, send)
            return
        need = (
            KNOWN_CALLER if access is None else need_of(access, scope["path_params"], scope["query_string"])
        )
        await self.check.serve(inner, need, scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The matched route's handler, its errors answered as the app's exception handlers say."""
        request = Request(scope, receive, send)
        try:
            response = await scope["endpoint"](request)
        except Exception as error:
            for kind, handler in self.handlers:
                if isinstance(error, kind):
                    response = await handler(request, error)
                    break
            else:
                raise
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> Access | None:
        """Leave the route the router would serve in the scope; its access."""
        route, child = self.routes.match(scope)
        if route is None:
            return None
        scope.update(child)
        scope["route"] = route
        return getattr(route, "access", Access.NONE)
