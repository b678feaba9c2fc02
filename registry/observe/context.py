"""The request in progress, as code far from the ASGI scope needs it: log lines (the request id) and
events (who, from where).

A contextvar, set by the observe layer for the request's task; starlette runs handlers and services in
that same task, so they see it without being handed anything. The caller's name is read from the auth
layer's grant only when asked for, because the grant is decided after this context is set.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from registry.auth.identity import grant_of


class RequestContext:
    __slots__ = ("address", "request_id", "scope")

    def __init__(self, request_id: str, address: str, scope: Any) -> None:
        self.request_id = request_id
        self.address = address
        self.scope = scope

    @property
    def actor(self) -> str:
        """The authenticated caller's name; empty when anonymous or with `auth: none`."""
        grant = grant_of(self.scope)
        return grant.identity.name if grant is not None else ""

    @property
    def method(self) -> str:
        return self.scope.get("method", "")

    def header(self, name: bytes) -> str:
        """A request header's first value (`name` in lower case), or ""."""
        for key, value in self.scope.get("headers", ()):
            if key == name:
                return value.decode("latin-1")
        return ""

    @property
    def repository(self) -> str:
        """The repository named by the route the router picked; empty before routing or outside /v2/."""
        return self.scope.get("path_params", {}).get("name", "")


_current: ContextVar[RequestContext | None] = ContextVar("registry_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def enter_request(context: RequestContext) -> object:
    """Make `context` the current request; returns the token `leave_request` needs."""
    return _current.set(context)


def leave_request(token: Any) -> None:
    _current.reset(token)
