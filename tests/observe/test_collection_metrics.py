"""The collector's seam: a `CollectionFinished` emitted through the dispatcher moves the gc counters, and
is no webhook (Distribution's envelope has no such event)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from registry.events import CollectionFinished, Dispatcher
from registry.events.outbox import Notifier
from registry.observe.metrics import EventMetrics
from registry.settings.notifications import NotificationEndpoint


def _value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_finished_collection_is_counted_and_not_sent() -> None:
    notifier = Notifier([NotificationEndpoint("hook", "http://127.0.0.1:9/")], "", "http", 5000)
    events = Dispatcher(notifier)
    events.subscribe(EventMetrics())
    before = {name: _value(name) for name in ("registry_gc_runs_total", "registry_gc_reclaimed_bytes_total")}
    events.emit(CollectionFinished(blobs=3, bytes=4096, seconds=1.5, timestamp=1_700_000_000.0))
    assert _value("registry_gc_runs_total") == before["registry_gc_runs_total"] + 1
    assert _value("registry_gc_reclaimed_bytes_total") == before["registry_gc_reclaimed_bytes_total"] + 4096
    assert _value("registry_gc_last_run_timestamp_seconds") == 1_700_000_000.0
    assert notifier.take_pulls() == []
    assert not notifier.changed().is_set()
