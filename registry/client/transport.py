"""Which scheme and TLS settings to speak to a registry with: Docker's rules.

A registry whose host is a loopback address (127.0.0.0/8, ::1) is spoken to over plain HTTP with no flag,
as Docker treats loopback as an insecure registry by default. Any other registry is HTTPS with the
system's CAs, the ones its certs.d folders hold and `--ca-cert` (and the client certificate found there)
and nothing else; `--insecure` allows HTTPS without verification and,
failing that, plain HTTP. The decision is by address literal, never by resolving a name, so `localhost`
is an ordinary TLS registry.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from registry.client import certs


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    verify: ssl.SSLContext | bool


def host_of(domain: str) -> str:
    """The host part of `host[:port]` or `[v6]:port`."""
    if domain.startswith("["):
        return domain[1 : domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    try:
        return ipaddress.ip_address(host_of(domain)).is_loopback
    except ValueError:
        return False


def tls_context(domain: str, ca_cert: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    found = certs.for_registry(domain)
    for authority in [*found.authorities, *([ca_cert] if ca_cert is not None else [])]:
        context.load_verify_locations(cafile=str(authority))
    if found.client is not None:
        context.load_cert_chain(*map(str, found.client))
    return context


def candidates(domain: str, insecure: bool = False, ca_cert: Path | None = None) -> list[Endpoint]:
    """Endpoints to try in order; the first that answers HTTP at all is the registry's."""
    if is_loopback(domain):
        return [Endpoint(f"http://{domain}", False)]
    if insecure:
        return [Endpoint(f"https://{domain}", False), Endpoint(f"http://{domain}", False)]
    return [Endpoint(f"https://{domain}", tls_context(domain, ca_cert))]
