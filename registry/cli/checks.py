"""What `registry serve` checks before a server engine starts, whichever engine it is: every mistake
here is one line naming the setting, the file or the address, rather than a traceback from a worker
or a "listening" line followed by a failure.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from pathlib import Path

from registry.config import Settings, leaves
from registry.settings.values import leaf_value

log = logging.getLogger("registry")


def check_before_start(settings: Settings) -> list[str]:
    """Everything an operator can get wrong that no engine should be the first to find; the addresses
    to bind."""
    check_exposure(settings)
    addresses = listen_addresses(settings)
    check_files(settings)
    check_addresses_free(addresses)
    return addresses


def listen_addresses(settings: Settings) -> list[str]:
    """Every address the listen host resolves to, as HOST:PORT ([IPv6]:PORT): `localhost` is both
    127.0.0.1 and ::1, and an engine handed the name would bind only one of them."""
    host, port = settings.host, settings.port
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ValueError(f"setting 'http.addr': cannot resolve {host!r}: {error.strerror}") from None
    addresses = dict.fromkeys(str(info[4][0]) for info in found)
    return [f"[{address}]:{port}" if ":" in address else f"{address}:{port}" for address in addresses]


def check_exposure(settings: Settings) -> None:
    """Safe by default: a registry reachable beyond this machine without authentication must be the
    operator's explicit choice (`allow_anonymous_remote`), and then it is logged at every start. Every
    address the host resolves to counts (`:PORT` is every interface)."""
    if settings.auth.kind != "none" or _only_loopback(settings):
        return
    if not settings.auth.allow_anonymous_remote:
        raise ValueError(
            f"refusing to serve {settings.http.addr} without authentication: set auth.htpasswd.path or "
            "auth.mode: basic|token, or auth.allow_anonymous_remote: true to let anyone who can reach it "
            "push and delete"
        )
    log.warning(
        "serving %s without authentication: anyone who can reach it may push and delete", settings.http.addr
    )


def _only_loopback(settings: Settings) -> bool:
    try:
        addresses = listen_addresses(settings)
    except ValueError:
        return False  # a name that does not resolve is never taken for a safe one
    return all(
        ipaddress.ip_address(address.rpartition(":")[0].strip("[]")).is_loopback for address in addresses
    )


def check_addresses_free(addresses: list[str]) -> None:
    """Bind each address once, as the engine will, and let it go: a busy port is then one line naming
    the address, before anything says it is listening."""
    for address in addresses:
        host, _, port = address.rpartition(":")
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host.strip("[]"), int(port)))
            except OSError as error:
                advice = {
                    errno.EADDRINUSE: "is in use: stop what listens there, or choose another port",
                    errno.EACCES: "needs privileges (a port below 1024): choose another port",
                    errno.EADDRNOTAVAIL: "is not an address of this machine",
                }.get(error.errno or 0, f"cannot be bound ({error.strerror})")
                raise ValueError(f"cannot listen on {address}: it {advice} (setting 'http.addr')") from None


def check_files(settings: Settings) -> None:
    """Each file a setting names (TLS material, htpasswd, rules, trusted keys) must be readable now,
    not when the first worker, or the first request, trips over it."""
    for leaf in leaves():
        value = leaf_value(settings, leaf.path)
        if not leaf.files:
            continue
        if isinstance(value, str):
            value = value.split(",") if leaf.files == "list" else [value]
        for path in filter(None, (str(p).strip() for p in value)):
            try:
                Path(path).open("rb").close()
            except OSError as error:
                raise ValueError(f"setting {leaf.key!r}: cannot read {path}: {error.strerror}") from None
