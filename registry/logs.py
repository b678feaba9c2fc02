"""One log format for every line, the registry's and hypercorn's, in every process that serves.

hypercorn gives its `hypercorn.error` logger a stderr handler of its own unless handed a logger; that
logger also propagates to the root one, so each of its lines came out twice, in two formats. Handed
the logger itself it adds no handler, and its lines go through the root handler set here, once.
hypercorn's own access log stays off (its `accesslog` is left unset): the registry writes one access
line per request itself (observe/access.py), with the request id, user and repository hypercorn does
not know.
Worker processes (`workers` > 1) start fresh, so they configure logging again when they build the app.
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
    return logging.getLogger(SERVER_LOGGER)
