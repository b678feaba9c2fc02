"""One log format for every line, the registry's and hypercorn's, in every process that serves.

hypercorn gives its `hypercorn.error` logger a stderr handler of its own unless handed a logger; that
logger also propagates to the root one, so each of its lines came out twice, in two formats. Handed
the logger itself it adds no handler, and its lines go through the root handler set here, once.
hypercorn's own access log stays off (its `accesslog` is left unset): the registry writes one access
line per request itself (observe/access.py), with the request id, user and repository hypercorn does
not know.
Worker processes (`workers` > 1) start fresh, so they configure logging again when they build the app.

Each worker of hypercorn's logs its own "Running on ..." line: the operator gets one line, the
registry's own "listening on", logged once before the workers start.
"""

from __future__ import annotations

import logging

from registry.observe.logformat import RequestIdFilter, make_formatter

SERVER_LOGGER = "hypercorn.error"


def configure(level: str, formatter: str = "text") -> logging.Logger:
    """Set the root handler (unless the hosting server already did) and return the logger to hand
    the server as its error log."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(make_formatter(formatter))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic's INFO lines (its plugins, the dialect, each step) would be a dozen at every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server_log = logging.getLogger(SERVER_LOGGER)
    if _drop_running_on not in server_log.filters:
        server_log.addFilter(_drop_running_on)
    return server_log


def _drop_running_on(record: logging.LogRecord) -> bool:
    """hypercorn's per-worker "Running on" lines repeat the registry's own one "listening" line."""
    return not str(record.msg).startswith("Running on ")
