"""Request bodies that the app answers early, and bodies that stop arriving.

Why this layer exists: hypercorn (0.18) hands each body chunk to the app through a queue of ten
messages. When a handler answers without reading the body (a 401 for a wrong password, a 416 for a
chunk at the wrong offset, any error before an upload streams), the queue fills after ~640 KiB, the
connection's reader blocks putting the next chunk, and closing the stream blocks putting
`http.disconnect`: the socket, its task and its buffers stay for good, clients that write the whole
body before reading hang, and SIGTERM waits out its whole grace period. Nothing in hypercorn's
settings avoids it, so the fix lives here, in front of the app, for every ASGI server.

What it does:
- Before the last part of a response goes out (its last body message, or a file sent by pathsend),
  the rest of an unread body is read and dropped, up to `DRAIN_LIMIT` bytes: the client gets its
  answer and the connection stays usable.
- A body longer than that is not worth reading: the response says `Connection: close` (when its size
  is known before the response starts), and the rest is dropped while the response is sent, until the
  server reports the stream closed, so nothing blocks and the server closes the socket.
- Except on HTTP/2, where one stream cannot close the connection its neighbours share, and hypercorn
  fails the whole connection when data arrives for a stream it has closed: there the whole body is
  drained (flow control and the read timeout still bound what a client can make us wait for).
- A body that stops arriving for `read_timeout` seconds ends as a client disconnect (starlette raises
  `ClientDisconnect` in the handler, which rolls the upload's chunk back); the app's answer then
  finishes the exchange with the body incomplete, which makes the server close the connection.
"""

from __future__ import annotations

import asyncio
import logging
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.pathsend import PATHSEND

log = logging.getLogger("registry")

# An unread body up to this size is read and dropped so the connection can carry the next request;
# beyond it, closing the connection is cheaper than receiving the rest.
DRAIN_LIMIT = 8 << 20
_DISCONNECT: Message = {"type": "http.disconnect"}


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _without_body(scope: Scope, declared: int | None) -> bool:
    """An HTTP/1 request with neither a length nor a chunked body has none (RFC 9112, 6.3): nothing to
    drain, which spares every GET and HEAD a wait on the server's receive. (HTTP/2 may send a body
    without a length.)"""
    if scope["http_version"] == "2" or declared:
        return False
    return declared == 0 or not any(name.lower() == b"transfer-encoding" for name, _ in scope["headers"])


class _Body:
    """One request's body as the app sees it: counts what arrived, times out stalls, drains the rest."""

    def __init__(self, receive: Receive, read_timeout: float, declared: int | None, limit: float) -> None:
        self._receive = receive
        self.read_timeout = read_timeout
        self.declared = declared
        self.limit = limit
        self.received = 0
        # Set once the body's last chunk or a disconnect has been seen (by the app or by us).
        self.complete = False
        self.timed_out = False
        # One body reader at a time: starlette's StreamingResponse listens for a disconnect while `drain`
        # reads, and each part of the body must reach exactly one of them. (Two readers waiting at once
        # deadlocked an empty streamed response on granian: the waiter left over expected more body.)
        self._reading = asyncio.Lock()

    async def receive(self) -> Message:
        message = await self._next_part()
        # The body is over: what remains is waiting for a disconnect (streaming responses do).
        return message if message is not None else await self._receive()

    async def _next_part(self) -> Message | None:
        """The body's next message, or None once the body is over."""
        async with self._reading:
            if self.complete:
                return None
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await self._receive()
            except TimeoutError:
                self.timed_out = self.complete = True
                return _DISCONNECT
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                self.complete = not message.get("more_body", False)
            else:
                self.complete = True
            return message

    @property
    def too_long_to_drain(self) -> bool:
        return self.declared is not None and self.declared - self.received > self.limit

    async def drain(self) -> None:
        """Read and drop the rest of the body, up to `limit` more bytes."""
        limit = self.received + self.limit
        while self.received <= limit and await self._next_part() is not None:
            pass

    async def discard_until_closed(self) -> None:
        """Keep taking messages until the server says the stream is gone, so its queue never blocks."""
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await self._receive()
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return


class BodyGuard:
    """The outermost ASGI layer: no request body can pin a connection, neither unread nor stalled."""

    def __init__(self, app: ASGIApp, read_timeout: float) -> None:
        self.app = app
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = math.inf if scope["http_version"] == "2" else DRAIN_LIMIT
        declared = _declared_length(scope)
        body = _Body(receive, self.read_timeout, declared, limit)
        body.complete = _without_body(scope, declared)

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.complete and body.too_long_to_drain:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            elif message["type"] == PATHSEND or (
                message["type"] == "http.response.body" and not message.get("more_body", False)
            ):
                await _finish(body, send, message)
                return
            await send(message)

        await self.app(scope, body.receive, guarded_send)
        if body.timed_out:
            log.info(
                "%s %s: no request body for %g s; connection closed",
                scope["method"],
                scope["path"],
                self.read_timeout,
            )


async def _finish(body: _Body, send: Send, last: Message) -> None:
    """Send the response's last part once the body is out of the way (see the module's docstring)."""
    if not body.complete and not body.too_long_to_drain:
        await body.drain()
    if body.complete:
        await send(last)
        return
    # The server ends the stream while sending this; meanwhile its queue must keep moving.
    discarding = asyncio.create_task(body.discard_until_closed())
    try:
        await send(last)
    finally:
        await discarding
