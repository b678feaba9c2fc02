"""Retry waits: doubling from the endpoint's backoff, capped, as Distribution's exponential sink."""

from __future__ import annotations

from registry.events.delivery import MAX_BACKOFF, retry_delay
from registry.settings.notifications import NotificationEndpoint
from registry.settings.values import Duration


def test_waits_double_from_backoff_up_to_the_cap() -> None:
    endpoint = NotificationEndpoint("hook", "http://127.0.0.1:9/", backoff=Duration("250ms"))
    assert [retry_delay(endpoint, n) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 2.0]
    assert retry_delay(endpoint, 40) == MAX_BACKOFF
    assert retry_delay(endpoint, 10_000) == MAX_BACKOFF  # no overflow after days of failures
    slow = NotificationEndpoint("slow", "http://127.0.0.1:9/", backoff=Duration("10m"))
    assert retry_delay(slow, 1) == 600.0  # a backoff above the cap is taken as given
