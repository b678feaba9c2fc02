"""Sizes and ages in Docker's words (`4.26MB`, `2 weeks ago`), so listings read like `docker images`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

_UNITS: Final = ("B", "kB", "MB", "GB", "TB", "PB")
_FRACTION_RE: Final = re.compile(r"(\.\d{6})\d+")


def human_size(size: float) -> str:
    """Decimal units with three significant digits, as Docker's `go-units.HumanSize` prints them."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.3g}{_UNITS[unit]}"


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time from an image config (Go writes nanoseconds, Python reads microseconds)."""
    try:
        moment = datetime.fromisoformat(_FRACTION_RE.sub(r"\1", text))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """Docker's `go-units.HumanDuration`, rounding as it does."""
    minutes, hours = int(seconds / 60), int(seconds / 3600 + 0.5)
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def age(created: str | None, now: datetime | None = None) -> str:
    """`3 weeks ago` for an image config's `created`, `N/A` when it has none."""
    moment = parse_time(created) if created else None
    if moment is None:
        return "N/A"
    return human_duration(((now or datetime.now(UTC)) - moment).total_seconds()) + " ago"
