"""Serving with granian: a Rust HTTP server (hyper and rustls) running the ASGI app, the default.

How the settings map:
- TLS: rustls with TLS 1.2 as the floor, ALPN h2 and http/1.1; `tls_client_ca` turns on rustls' client
  certificate verifier, which refuses a handshake without a certificate issued by that bundle.
- `idle_timeout`: hyper's header read timeout, which runs from the moment a connection waits for a
  request's headers, so it closes idle keep-alive connections as well as slow headers.
- `max_header_size`: answered 431 by `registry.limits.headers` on both protocols; hyper's own limits
  (its HTTP/1 read buffer, and HTTP/2's header list at four times the setting) only stop headers so
  large that the app should never have to look at them.
- `shutdown_timeout`: on SIGTERM each worker stops accepting and finishes its in-flight requests; a
  worker still busy after this many seconds is killed.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
from granian.http import HTTP1Settings, HTTP2Settings
from granian.log import LogLevels
from granian.server import Server

from registry.config import Settings

log = logging.getLogger("registry")

# granian's own lines in the registry's format, through the root handler every registry line uses.
_GRANIAN_LOGGER = "_granian"


def _log_config(level: str, formatter: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"registry": {"()": "registry.observe.logformat.make_formatter", "kind": formatter}},
        "filters": {"request_id": {"()": "registry.observe.logformat.RequestIdFilter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "registry", "filters": ["request_id"]}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {_GRANIAN_LOGGER: {"handlers": [], "propagate": True}},
    }


def _check_tls_files(settings: Settings) -> None:
    """Load the TLS files once here: granian's workers would otherwise fail on a bad CA bundle with a
    Rust panic in every worker instead of one clear line."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.http.tls.certificate, settings.http.tls.key)
        if settings.http.tls.client_ca:
            context.load_verify_locations(settings.http.tls.client_ca)
    except OSError as error:
        files = ", ".join(
            filter(None, (settings.http.tls.certificate, settings.http.tls.key, settings.http.tls.client_ca))
        )
        raise OSError(f"cannot use the TLS files {files}: {error.strerror or error}") from None


def build(settings: Settings, workers: int, address: str) -> Server:
    host, _, port = address.rpartition(":")
    tls: dict[str, Any] = {}
    if settings.http.tls.certificate:
        _check_tls_files(settings)
        tls = {
            "ssl_cert": Path(settings.http.tls.certificate),
            "ssl_key": Path(settings.http.tls.key),
            "ssl_protocol_min": SSLProtocols.tls12,
        }
        if settings.http.tls.client_ca:
            tls.update(ssl_ca=Path(settings.http.tls.client_ca), ssl_client_verify=True)
    return Server(
        "registry.asgi:app",
        address=host.strip("[]"),
        port=int(port),
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.auto if settings.http.tls.certificate else HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=max(1, round(settings.limits.idle_timeout * 1000))),
        http2_settings=HTTP2Settings(max_headers_size=4 * settings.limits.max_header_size),
        log_level=LogLevels(settings.log.level.lower()),
        log_dictconfig=_log_config(settings.log.level, settings.log.formatter),
        workers_kill_timeout=settings.http.draintimeout,  # type: ignore[arg-type]  # seconds, float is fine
        **tls,
    )


def run(settings: Settings, workers: int, addresses: list[str]) -> int:
    """Serve until SIGTERM (see the module's docstring for what it waits for).

    granian binds one address: where the listen host resolves to several (`localhost` to 127.0.0.1
    and ::1), the first is served and the others named in a warning.
    """
    if len(addresses) > 1:
        log.warning("granian serves one address: %s (not %s)", addresses[0], ", ".join(addresses[1:]))
    build(settings, workers, addresses[0]).serve()
    return 0
