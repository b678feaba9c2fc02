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
    if settings.metrics_listen:
        # Plain HTTP as Distribution's debug address; without TLS, hypercorn serves `bind` only.
        if settings.tls_cert:
            config.insecure_bind = [settings.metrics_listen]
        else:
            config.bind = [*addresses, settings.metrics_listen]
    config.application_path = "registry.asgi:app()"
    config.worker_class = "uvloop"
    config.workers = 0 if workers == 1 else workers
    config.graceful_timeout = settings.shutdown_timeout
    # hypercorn's keep-alive timer also runs while a connection has not finished sending its headers.
    config.keep_alive_timeout = settings.idle_timeout
    config.h11_max_incomplete_size = settings.max_header_size
    config.h2_max_header_list_size = settings.max_header_size
    config.loglevel = settings.log_level.upper()
    config.errorlog = logging.getLogger(SERVER_LOGGER)  # configured by registry.logs
    if settings.tls_cert:
        # hypercorn's context: TLS 1.2 minimum, ALPN offering h2 then http/1.1, ECDHE+AESGCM ciphers.
        config.certfile, config.keyfile = settings.tls_cert, settings.tls_key
        if settings.tls_client_ca:
            config.ca_certs = settings.tls_client_ca
            config.verify_mode = ssl.CERT_REQUIRED
        config.create_ssl_context()  # a wrong path or a key that does not fit fails here, not per worker
    return run_hypercorn(config)
