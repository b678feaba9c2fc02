"""The Prometheus metrics this process records: requests, bytes and events.

prometheus-client keeps them in memory, or, when `PROMETHEUS_MULTIPROC_DIR` is set (`registry serve`
sets it, see multiprocess.py), in one memory-mapped file per worker process that /metrics adds up. The
environment is read when prometheus_client is first imported, so this module is imported only once the
app is being built, never by `registry serve`'s own process before it has set the directory.

Labels are bounded: the route's name from the route table (not the path, which holds repository names),
the method from a fixed list, the status code. Each label set's children are looked up once and kept,
since `.labels()` takes a lock and builds a tuple on every call.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from registry.events import AnyEvent, CollectionFinished
from registry.observe.batch import PENDING

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a manifest GET served from cache (a millisecond) to a large blob's upload (minutes).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

REQUESTS = Counter(
    "registry_http_requests",
    "Requests answered, by route name, method and status",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "registry_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response",
    ["route", "method"],
    buckets=_BUCKETS,
)
KEPT = Counter(
    "registry_http_kept_answers",
    "Requests answered from memory, as the same request was while the index was unchanged, by route",
    ["route"],
)
RECEIVED = Counter("registry_http_received_bytes", "Request body bytes received", ["route"])
SENT = Counter("registry_http_sent_bytes", "Response body bytes sent", ["route"])
EVENTS = Counter(
    "registry_events",
    "Pushes, mounts, pulls and deletes of blobs, manifests and tags (the events services emit)",
    ["target", "action"],
)
EVENT_BYTES = Counter(
    "registry_event_bytes",
    "Bytes of the blobs and manifests pushed, mounted and pulled",
    ["target", "action"],
)

NOTIFICATIONS_SENT = Counter(
    "registry_notifications_sent", "Events an endpoint accepted (2xx or 3xx)", ["endpoint"]
)
NOTIFICATIONS_FAILED = Counter(
    "registry_notifications_failures", "Attempts to send an event that failed (to be retried)", ["endpoint"]
)
# 1 while the endpoint's last `threshold` attempts (in some process) all failed.
NOTIFICATIONS_FAILING = Gauge(
    "registry_notifications_endpoint_failing",
    "1 while an endpoint has failed `threshold` times in a row",
    ["endpoint"],
    multiprocess_mode="livemax",
)
GC_RUNS = Counter("registry_gc_runs", "Garbage collector runs finished")
GC_BLOBS = Counter("registry_gc_reclaimed_blobs", "Blobs the garbage collector deleted")
GC_BYTES = Counter("registry_gc_reclaimed_bytes", "Bytes of the blobs the garbage collector deleted")
GC_SECONDS = Counter("registry_gc_run_seconds", "Time the garbage collector's runs took, in total")
GC_LAST = Gauge(
    "registry_gc_last_run_timestamp_seconds",
    "When the last garbage collector run finished (Unix time)",
    multiprocess_mode="max",
)
TOKENS = Counter(
    "registry_token_requests",
    "Requests to the token service by outcome: issued, or refused (credentials, throttled, bad_request)",
    ["outcome"],
)


def count_token(outcome: str) -> None:
    TOKENS.labels(outcome).inc()


def _count_collection(run: CollectionFinished) -> None:
    GC_RUNS.inc()
    GC_BLOBS.inc(run.blobs)
    GC_BYTES.inc(run.bytes)
    GC_SECONDS.inc(run.seconds)
    GC_LAST.set(run.timestamp)


class NotificationMetrics:
    """The delivery worker's counters (registry.events.delivery.DeliveryMetrics), each endpoint's made
    at start so that dashboards and alerts see 0 rather than nothing."""

    def __init__(self, endpoints: Iterable[str]) -> None:
        for endpoint in endpoints:
            NOTIFICATIONS_SENT.labels(endpoint)
            NOTIFICATIONS_FAILED.labels(endpoint)
            self.failing(endpoint, False)

    def sent(self, endpoint: str) -> None:
        NOTIFICATIONS_SENT.labels(endpoint).inc()

    def failed(self, endpoint: str) -> None:
        NOTIFICATIONS_FAILED.labels(endpoint).inc()

    def failing(self, endpoint: str, failing: bool) -> None:
        NOTIFICATIONS_FAILING.labels(endpoint).set(1 if failing else 0)


class RequestMetrics:
    """Each request's count, duration and bytes (through batch.PENDING: see there why)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple] = {}
        self._kept: dict[str, Counter] = {}

    def record(self, route: str, method: str, status: int, duration: float, received: int, sent: int) -> None:
        label = method if method in _METHODS else "other"
        key = (route, label, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                REQUESTS.labels(route, label, str(status)),
                DURATION.labels(route, label),
                RECEIVED.labels(route),
                SENT.labels(route),
            )
        requests, durations, received_bytes, sent_bytes = children
        PENDING.inc(requests)
        PENDING.observe(durations, duration)
        if received:
            PENDING.inc(received_bytes, received)
        if sent:
            PENDING.inc(sent_bytes, sent)

    def record_kept(self, route: str) -> None:
        """One more request of `route` answered from a kept answer (registry/api/kept.py)."""
        kept = self._kept.get(route)
        if kept is None:
            kept = self._kept[route] = KEPT.labels(route)
        PENDING.inc(kept)

    @staticmethod
    def flush() -> None:
        PENDING.flush()


class EventMetrics:
    """The events subscriber: counts each event and its bytes."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple] = {}

    def __call__(self, event: AnyEvent) -> None:
        if isinstance(event, CollectionFinished):
            _count_collection(event)
            return
        key = (event.target, event.action)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (EVENTS.labels(*key), EVENT_BYTES.labels(*key))
        events, event_bytes = children
        PENDING.inc(events)
        if event.size:
            PENDING.inc(event_bytes, event.size)
