"""Failed-login counting, so passwords cannot be guessed at network speed.

Each key (a user name, a client address) may fail `limit` times within a sliding `window`; after that
every login for the key is refused before any password is checked, until old failures age out. Refusing
first is the point: a throttled guesser learns nothing, even when the guess is right. The counts live
in the process (each server worker counts on its own), bounded in memory by forgetting the oldest keys.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 100_000


class FailureLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now. A limit of 0 disables the check."""
        failures = self._recent(key)
        if self.limit <= 0 or failures is None or len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[-self.limit] + self.window - self.clock())

    def failed(self, key: str) -> None:
        failures = self._recent(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=max(self.limit, 1))
            if len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)
        failures.append(self.clock())
        self._failures.move_to_end(key)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)
