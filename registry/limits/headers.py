"""A limit on the size of a request's headers, whatever the server or protocol.

hypercorn's `h11_max_incomplete_size` only bounds headers that are still arriving: headers that come in
one read (up to 64 KiB) pass whatever their size, and HTTP/2's advertised `MAX_HEADER_LIST_SIZE` is
advice to the client. So the complete headers are measured here, before any route, auth or body work.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from registry.errors import ErrorCode, RegistryError, error_response

# Per header line on the wire: ": " and CRLF.
_LINE_OVERHEAD = 4


def header_size(scope: Scope) -> int:
    """About what the headers took on the wire (HTTP/1.1 framing), the request target included."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return target + sum(len(name) + len(value) + _LINE_OVERHEAD for name, value in scope["headers"])


class HeaderLimit:
    """ASGI layer answering 431 to requests whose headers exceed `max_size` bytes."""

    def __init__(self, app: ASGIApp, max_size: int) -> None:
        self.app = app
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and header_size(scope) > self.max_size:
            refused = RegistryError(
                ErrorCode.UNSUPPORTED,
                {"maxHeaderSize": self.max_size},
                message=f"request headers larger than {self.max_size} bytes",
                status=431,
            )
            await error_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)
