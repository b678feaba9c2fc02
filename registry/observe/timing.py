"""Latency histograms of the index and the blob store, per operation, without touching either.

`timed` wraps an object so that each of its coroutine methods observes its duration in a histogram
labelled by the method's name (a fixed set, so the labels are bounded). The histogram's children are
looked up once, at wrapping; a call then costs two clock reads and one observation, added up in
batch.PENDING. Everything else (attributes, plain and generator methods) passes through untouched.
Only built with metrics on.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Histogram

from registry.observe.batch import PENDING

T = TypeVar("T")
# An indexed SQLite lookup is tens of microseconds; a store's write can take seconds.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

INDEX_SECONDS = Histogram(
    "registry_index_operation_duration_seconds",
    "Time the metadata index took per operation",
    ["operation"],
    buckets=_BUCKETS,
)
STORE_SECONDS = Histogram(
    "registry_storage_operation_duration_seconds",
    "Time the blob store took per operation (reads stream, and are not in it)",
    ["operation"],
    buckets=_BUCKETS,
)


def _timed_method(
    method: Callable[..., Awaitable[Any]], observe: Callable[[float], None]
) -> Callable[..., Any]:
    @functools.wraps(method)
    async def timed_call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observe(time.perf_counter() - started)

    return timed_call


class _Timed:
    def __init__(self, target: Any, histogram: Histogram) -> None:
        self._target = target
        for name, _ in inspect.getmembers(type(target), inspect.iscoroutinefunction):
            if not name.startswith("_"):
                method = getattr(target, name)
                observe = functools.partial(PENDING.observe, histogram.labels(name))
                setattr(self, name, _timed_method(method, observe))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def timed(target: T, histogram: Histogram) -> T:
    """`target`, its coroutine methods timed into `histogram`."""
    return _Timed(target, histogram)  # type: ignore[return-value]
