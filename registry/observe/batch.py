"""Request-path metrics added up in plain Python and handed to prometheus-client once a second.

In multiprocess mode (`registry serve` always runs it: see multiprocess.py) every increment of a
prometheus-client value takes a lock, checks the process id with a system call and packs the new value
into a memory-mapped file; a manifest GET made eight of them (request count, duration histogram, bytes
sent, event count and bytes, the index's latency histogram), about a sixth of its CPU. Here the same
observations cost a dictionary update each, and one increment per label set reaches the files at most
`DELAY` seconds later, from a timer on the event loop, and before this process renders /metrics.

A histogram's observations are counted per bucket as prometheus-client itself would count them (the
first bucket whose upper bound is at least the value) and added to its bucket and sum values in one
step each; prometheus-client has no public call for that, so `flush` uses the child's `_buckets` and
`_sum`, whose use tests/observe check against what `observe` records. The price: a worker killed
outright loses its last `DELAY` seconds of counts, as the access log loses its last lines.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

DELAY = 1.0


class Pending:
    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}
        # A histogram child -> observations per bucket, then their sum.
        self._observed: dict[Any, list[float]] = {}
        self._bounds: dict[Any, list[float]] = {}
        self._scheduled = False

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        self._counts[counter] = self._counts.get(counter, 0.0) + amount
        if not self._scheduled:
            self._schedule()

    def observe(self, histogram: Any, value: float) -> None:
        pending = self._observed.get(histogram)
        if pending is None:
            bounds = self._bounds.get(histogram)
            if bounds is None:
                bounds = self._bounds[histogram] = list(histogram._upper_bounds)
            pending = self._observed[histogram] = [0.0] * (len(bounds) + 1)
        pending[bisect_left(self._bounds[histogram], value)] += 1
        pending[-1] += value
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside a server (a command, a test): nothing would flush later
            self.flush()
            return
        self._scheduled = True
        loop.call_later(DELAY, self.flush)

    def flush(self) -> None:
        """Hand everything pending to prometheus-client."""
        self._scheduled = False
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        observed, self._observed = self._observed, {}
        for histogram, pending in observed.items():
            for bucket, number in zip(histogram._buckets, pending, strict=False):
                if number:
                    bucket.inc(number)
            histogram._sum.inc(pending[-1])


PENDING = Pending()
