"""Batched metrics (registry/observe/batch.py) record what prometheus-client itself would have."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram

from registry.observe.batch import DELAY, Pending

BUCKETS = (0.001, 0.01, 0.1, 1)
VALUES = (0.0, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 7.5, 0.0005)


def _histogram_samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_a_flush_records_what_observe_would() -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    expected = Histogram("t", "t", ["route"], buckets=BUCKETS, registry=direct).labels("r")
    counted = Counter("c", "c", registry=direct)
    pending = Pending()
    got = Histogram("t", "t", ["route"], buckets=BUCKETS, registry=batched).labels("r")
    got_counted = Counter("c", "c", registry=batched)

    async def observe_all() -> None:  # in a loop, as in a server: recorded later, by a timer or a flush
        for value in VALUES:
            expected.observe(value)
            counted.inc(value)
            pending.observe(got, value)
            pending.inc(got_counted, value)

    asyncio.run(observe_all())
    assert batched.get_sample_value("t_count", {"route": "r"}) == 0
    pending.flush()
    assert _histogram_samples(batched) == _histogram_samples(direct)
    pending.flush()  # nothing pending: nothing added twice
    assert _histogram_samples(batched) == _histogram_samples(direct)


def test_counts_reach_prometheus_client_after_the_delay_on_their_own() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    pending = Pending()

    async def count_then_wait() -> tuple[float | None, float | None]:
        pending.inc(counter, 3)
        before = registry.get_sample_value("c_total")
        await asyncio.sleep(DELAY + 0.5)
        return before, registry.get_sample_value("c_total")

    assert asyncio.run(count_then_wait()) == (0, 3)


def test_outside_a_loop_counts_are_recorded_at_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    Pending().inc(counter, 2)
    assert registry.get_sample_value("c_total") == 2
