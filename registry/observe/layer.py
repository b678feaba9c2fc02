"""The observe layer, outermost around the app: each request's context and id, its access line and its
request metrics.

Outermost so that it sees what the client got, the connection limits' answers included, and so that
the request id is set before anything else can log. It only wraps `receive` and `send` to count bytes
and catch the status; the route's name is read from the scope, where the gate (or, outside /v2/, the
router) put it, or, for a request answered before either (a 431), matched from the route table then.

A pull whose answer is kept (registry/api/kept.py) is answered here, from memory, with its own request
id, access line, metrics and events: the layers inside are only worth going through while the answer
is not known. A request that could have been so answered, and was not, leaves its answer to be kept.

With `metrics_listen`, the same server also listens on that address; requests arriving there may only
reach the operator's paths (metrics and health), and everything else is 404 there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.kept import Answer, KeptAnswers, Miss
from registry.api.matching import RouteTable
from registry.auth.origin import client_address
from registry.config import Settings
from registry.observe.access import AccessLog, Outcome, open_access_log
from registry.observe.context import RequestContext, enter_request, leave_request
from registry.observe.requestid import HEADER, request_id

if TYPE_CHECKING:
    from registry.observe.metrics import RequestMetrics

# The request's context, the token that ends it, and when it started.
_Request = tuple[RequestContext, object, float]
OPERATOR_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
UNMATCHED = "unmatched"


class Observe:
    def __init__(
        self, app: ASGIApp, settings: Settings, routes: Sequence[BaseRoute], kept: KeptAnswers | None = None
    ) -> None:
        self.app = app
        self.kept = kept
        self.routes = RouteTable(routes)
        self.trusted = settings.trusted_proxy_addresses
        self.access_log: AccessLog | None = None
        if not settings.log.accesslog.disabled:
            self.access_log = open_access_log(settings.log.formatter)
        self.metrics_port = settings.metrics_port
        self.metrics: RequestMetrics | None = None
        if settings.http.debug.prometheus.enabled:
            from registry.observe.metrics import RequestMetrics

            self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flushing(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.metrics_port is not None and not self._served_here(scope):
            await PlainTextResponse("not found", 404)(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope, self.trusted)
        context = RequestContext(rid, client_address(scope, self.trusted), scope)
        token = enter_request(context)
        id_header = (HEADER, rid.encode())
        found = self.kept.find(scope) if self.kept is not None else None
        if type(found) is Answer:
            await self._answer_again(found, scope, send, id_header, (context, token, started))
            return
        status = received = sent = bodies = 0
        # What went out, for the kept answers: the headers as the app sent them, and the last body.
        answered_headers: list[tuple[bytes, bytes]] = []
        answered_body = b""

        async def observed_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, bodies, answered_headers, answered_body
            if message["type"] == "http.response.start":
                status = message["status"]
                answered_headers = message.get("headers", [])
                message["headers"] = [*answered_headers, id_header]
            elif message["type"] == "http.response.body":
                answered_body = message.get("body", b"")
                sent += len(answered_body)
                bodies += 1
            await send(message)

        try:
            await self.app(scope, observed_receive, observed_send)
            if type(found) is Miss and bodies == 1 and self.kept is not None:
                self.kept.keep(found, scope, status, answered_headers, answered_body)
        finally:
            self._done(scope, (context, token, started), status, received, sent)

    async def _answer_again(
        self, answer: Answer, scope: Scope, send: Send, id_header: tuple[bytes, bytes], request: _Request
    ) -> None:
        """A kept answer (registry/api/kept.py), with this request's own id, line, counts and events."""
        scope["route"], scope["path_params"] = answer.route, answer.path_params
        status = sent = 0
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [*answer.headers, id_header]}
            )
            status = 200
            await send({"type": "http.response.body", "body": answer.body})
            sent = len(answer.body)
            if answer.replay is not None:
                answer.replay()
        finally:
            self._done(scope, request, status, 0, sent)
            if self.metrics is not None:
                self.metrics.record_kept(self._route(scope))

    def _done(self, scope: Scope, request: _Request, status: int, received: int, sent: int) -> None:
        """The request's access line and metrics; its context ends."""
        context, token, started = request
        # No status: the app failed before answering, and the server answers 500.
        duration = time.perf_counter() - started
        outcome = Outcome(status or 500, received, sent, duration, self._route(scope))
        if self.metrics is not None:
            self.metrics.record(
                outcome.route, scope["method"], outcome.status, outcome.duration, received, sent
            )
        if self.access_log is not None:
            self.access_log.write(context, outcome)
        leave_request(token)

    def _flushing(self, send: Send) -> Send:
        """The lifespan's send: the buffered access lines and counts are written before the server
        shuts down."""

        async def flushing_send(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                if self.access_log is not None:
                    self.access_log.flush()
                if self.metrics is not None:
                    self.metrics.flush()
            await send(message)

        return flushing_send

    def _served_here(self, scope: Scope) -> bool:
        """With `metrics_listen`: its address serves the operator's paths only, and /metrics only there."""
        server = scope.get("server")
        if server is not None and server[1] == self.metrics_port:
            return scope["path"] in OPERATOR_PATHS
        return scope["path"] != "/metrics"

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            route, _ = self.routes.match(scope)
        return getattr(route, "name", None) or UNMATCHED
