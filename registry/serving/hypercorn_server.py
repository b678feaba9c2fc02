"""Serving with hypercorn: pure Python, selectable with `server: hypercorn`."""

from __future__ import annotations

import logging
import ssl

from hypercorn.config import Config
from hypercorn.run import run as run_hypercorn

from registry.config import Settings
from registry.logs import SERVER_LOGGER


def run(settings: Settings, workers: int, addresses: list[str]) -> int:
    """Serve until SIGTERM, which lets in-flight requests finish for up to `shutdown_timeout` seconds."""
    config = Config()
    config.bind = addresses
    if settings.http.debug.addr:
        # Plain HTTP as Distribution's debug address; without TLS, hypercorn serves `bind` only.
        if settings.http.tls.certificate:
            config.insecure_bind = [settings.http.debug.addr]
        else:
            config.bind = [*addresses, settings.http.debug.addr]
    config.application_path = "registry.asgi:app()"
    config.worker_class = "uvloop"
    config.workers = 0 if workers == 1 else workers
    config.graceful_timeout = settings.http.draintimeout
    # hypercorn's keep-alive timer also runs while a connection has not finished sending its headers.
    config.keep_alive_timeout = settings.limits.idle_timeout
    config.h11_max_incomplete_size = settings.limits.max_header_size
    config.h2_max_header_list_size = settings.limits.max_header_size
    config.loglevel = settings.log.level.upper()
    config.errorlog = logging.getLogger(SERVER_LOGGER)  # configured by registry.logs
    if settings.http.tls.certificate:
        # hypercorn's context: TLS 1.2 minimum, ALPN offering h2 then http/1.1, ECDHE+AESGCM ciphers.
        config.certfile, config.keyfile = settings.http.tls.certificate, settings.http.tls.key
        if settings.http.tls.client_ca:
            config.ca_certs = settings.http.tls.client_ca
            config.verify_mode = ssl.CERT_REQUIRED
        config.create_ssl_context()  # a wrong path or a key that does not fit fails here, not per worker
    return run_hypercorn(config)
