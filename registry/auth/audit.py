"""The audit trail: one log line (logger `registry.audit`) per login, push, delete and refusal, saying
who, what, which repository and from where, as `key=value` pairs a log shipper can parse.

Values that came from the client (a user name in a failed login) are quoted as JSON strings when they
hold anything but plain name characters, so nobody can forge a line by putting a newline in a name.
"""

from __future__ import annotations

import json
import logging
import re

log = logging.getLogger("registry.audit")
_PLAIN = re.compile(r"[\w.:/@+,*=-]*")


def _value(value: object) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def audit(event: str, user: str, address: str, **detail: object) -> None:
    fields = {"event": event, "user": user or "-", "address": address, **detail}
    log.info(" ".join(f"{key}={_value(value)}" for key, value in fields.items() if value is not None))
