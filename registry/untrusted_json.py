"""JSON from the other side of the network: manifests pushed to the registry, manifests the client pulls.

`json.loads` alone is unsafe on hostile bytes: it recurses once per nesting level (100,000 `[` raise
RecursionError, an internal error), refuses an integer of over 4,300 digits with a bare ValueError, guesses
UTF-16 and UTF-32, and accepts `NaN` and `Infinity`, which are not JSON and which Go clients (the other end
of most pushes and pulls) refuse. `load` makes all of these one `JSONRejected`, and bounds the nesting so
code that walks the result recursively (json.dumps) cannot fail on it either.
"""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn

# Real manifests nest under 10 levels; 100 leaves room for any extension field and stays far below the
# interpreter's recursion limit (1,000), which json.loads and json.dumps count against.
MAX_DEPTH: Final = 100


class JSONRejected(ValueError):
    """The bytes are not a JSON document (RFC 8259, UTF-8) within MAX_DEPTH levels of nesting."""


def _not_json(constant: str) -> NoReturn:
    raise JSONRejected(f"{constant} is not a JSON value")


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels; iterative, so any depth is safe."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def load(data: bytes) -> Any:
    """The document in `data`, or JSONRejected saying why there is none."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_not_json)
    except RecursionError:
        raise JSONRejected(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer over Python's digit limit
        raise JSONRejected(str(error)) from None
    if _deeper_than(document, MAX_DEPTH):
        raise JSONRejected(f"nested deeper than {MAX_DEPTH} levels")
    return document
