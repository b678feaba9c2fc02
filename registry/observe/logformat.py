"""How log records become lines: the request id on every record, and the JSON formatter.

The request id is added by a filter on the handler, not by each logger: records of every library
(hypercorn's, SQLAlchemy's) made while a request is served carry its id too, read from the request
context. Outside a request it is "-".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from registry.observe.context import current_request

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Set by the access log on its records: the line's fields, which the JSON formatter spreads out.
FIELDS_ATTRIBUTE = "fields"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        record.request_id = request.request_id if request is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time`, `level`, `logger`, `msg`, `request_id`, an access line's
    fields, and `exception` with the traceback. Values a client chose are safely quoted by JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["request_id"] = request_id
        line.update(getattr(record, FIELDS_ATTRIBUTE, {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def make_formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)
