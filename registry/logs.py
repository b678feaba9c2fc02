"""One log format for every line, the registry's and hypercorn's, in every process that serves.

hypercorn gives its `hypercorn.error` logger a stderr handler of its own unless handed a logger; that
logger also propagates to the root one, so each of its lines came out twice, in two formats. Handed
the logger itself it adds no handler, and its lines go through the root handler set here, once.
Worker processes (`workers` > 1) start fresh, so they configure logging again when they build the app.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
SERVER_LOGGER = "hypercorn.error"


def configure(level: str) -> logging.Logger:
    """Set the root handler (unless the hosting server already did) and return the logger to hand
    the server as its error log."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    return logging.getLogger(SERVER_LOGGER)
