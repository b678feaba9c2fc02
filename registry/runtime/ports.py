"""`-p [IP:]HOSTPORT:CONTAINERPORT[/tcp]`: a host port forwarded into a container's own network namespace.

A container with `--network none` has a network namespace of its own holding only `lo`, so nothing on
the host can reach it by address. The container's monitor (its shim) therefore listens on the host port
itself and, for each connection, opens a socket *inside* the container's namespace (a socket belongs to
the namespace it was created in; `setns` on a network namespace affects only the calling thread) to the
container's loopback port, and copies bytes both ways. No bridge, no NAT rules, no address routed to a
container: the host side is an ordinary listening socket, on loopback unless the user names an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
from dataclasses import dataclass

from registry.runtime.linux import CLONE_NEWNET, setns

_SPEC = re.compile(
    r"(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(?P<host>\d{1,5}):(?P<container>\d{1,5})(?:/(?P<proto>\w+))?"
)
_PIECE = 256 * 1024


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port: int
    container_port: int

    @classmethod
    def parse(cls, spec: str) -> PortMapping:
        """Docker's `-p` forms with a host port; the host address defaults to loopback (safe by
        default: publishing beyond this machine is something to ask for by naming the address)."""
        match = _SPEC.fullmatch(spec.strip())
        if not match or (match["proto"] or "tcp") != "tcp":
            raise ValueError(
                f"invalid port mapping {spec!r}: use [IP:]HOSTPORT:CONTAINERPORT[/tcp] (tcp only)"
            )
        host_port, container_port = int(match["host"]), int(match["container"])
        if not (0 < host_port < 65536 and 0 < container_port < 65536):
            raise ValueError(f"invalid port mapping {spec!r}: ports go from 1 to 65535")
        host_ip = (match["ip"] or "127.0.0.1").strip("[]")
        return cls("127.0.0.1" if host_ip == "localhost" else host_ip, host_port, container_port)


def listen(mapping: PortMapping) -> socket.socket:
    """The host side, bound before the container starts so a busy port fails `run`, not later."""
    family = socket.AF_INET6 if ":" in mapping.host_ip else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((mapping.host_ip, mapping.host_port))
    except OSError as error:
        listener.close()
        raise ValueError(
            f"cannot publish {mapping.host_ip}:{mapping.host_port}: {error.strerror} "
            "(is another process using that port?)"
        ) from None
    listener.listen(128)
    listener.setblocking(False)
    return listener


def _socket_in(netns: int) -> socket.socket:
    """A TCP socket created inside the network namespace `netns` (this thread returns home after)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        setns(netns, CLONE_NEWNET)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_PIECE):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class Forwarder:
    """Serves every mapping of one container in a thread of the monitor, into the network namespace of
    the container's current process (`target`: a restarted container has a new one), until `close`.
    The listening sockets stay the caller's."""

    def __init__(self, listeners: dict[socket.socket, PortMapping]) -> None:
        self._netns: int | None = None
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(listeners, started), name="ports", daemon=True
        )
        self._thread.start()
        started.wait()

    def target(self, pid: int) -> None:
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        previous, self._netns = self._netns, netns
        if previous is not None:
            os.close(previous)

    def _run(self, listeners: dict[socket.socket, PortMapping], started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        for listener, mapping in listeners.items():
            server = asyncio.start_server(
                lambda r, w, port=mapping.container_port: self._relay(r, w, port), sock=listener
            )
            self._servers.append(self._loop.run_until_complete(server))
        started.set()
        self._loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        if self._netns is None:
            writer.close()
            return
        inner = _socket_in(self._netns)
        inner.setblocking(False)
        try:
            await self._loop.sock_connect(inner, ("127.0.0.1", port))
            inner_reader, inner_writer = await asyncio.open_connection(sock=inner)
        except OSError:
            inner.close()
            writer.close()  # nothing listens in the container: the client sees the connection end
            return
        await asyncio.gather(_pipe(reader, inner_writer), _pipe(inner_reader, writer))
        for side in (writer, inner_writer):
            side.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if self._netns is not None:
            with contextlib.suppress(OSError):
                os.close(self._netns)
