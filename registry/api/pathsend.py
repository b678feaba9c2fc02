"""Responses whose body the server reads from a file itself: the ASGI `http.response.pathsend`
extension (granian offers it). The bytes then go from the page cache to the socket without passing
through Python, which is what makes large pulls cheap; servers without it get a stream instead."""

from __future__ import annotations

from pathlib import Path

from starlette.types import Receive, Scope, Send

from registry.api.common import PreparedResponse

PATHSEND = "http.response.pathsend"


class PathSendResponse(PreparedResponse):
    """A 200 whose body is the whole file at `path`; `headers` (complete, as the ASGI message carries
    them) must give its Content-Length."""

    def __init__(self, path: Path, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(200, headers)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": PATHSEND, "path": str(self.path)})
