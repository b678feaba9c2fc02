"""An optional per-client request rate limit: a token bucket per client address.

Each address may make `rate` requests per second on average and `burst` in a row; beyond that the
answer is the spec's `429 TOOMANYREQUESTS` with `Retry-After`, before authentication, so password
guessing is slowed as much as anything else. Behind trusted proxies the address is the forwarded one,
the same address the audit log and the login limits use.

The buckets live in the process: with several workers each counts on its own, so a client that spreads
its connections over them gets up to `workers` times the rate. That keeps the check free of any shared
state on the request path; a limit across processes or servers belongs in the proxy in front.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from registry.auth.origin import client_address
from registry.errors import ErrorCode, RegistryError, error_response


class TokenBuckets:
    """Tokens per key, refilled at `rate` per second up to `burst`; one request takes one."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._pruned = time.monotonic()

    def take(self, key: str, now: float) -> float:
        """Take a token for `key`: 0 when granted, else the seconds until one will be there."""
        self._prune(now)
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (a new one starts full anyway), so memory
        follows the clients seen lately, not every client ever seen."""
        refill = self.burst / self.rate
        if now - self._pruned < refill:
            return
        self._pruned = now
        self._buckets = {
            key: (tokens, then) for key, (tokens, then) in self._buckets.items() if now - then < refill
        }


class RateLimit:
    """ASGI layer answering 429 to a client address over its rate."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, trusted_proxies: Collection[str]) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst)
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            address = client_address(scope, self.trusted_proxies)
            wait = self.buckets.take(address, time.monotonic())
            if wait > 0:
                seconds = str(math.ceil(wait))
                refused = RegistryError(
                    ErrorCode.TOOMANYREQUESTS,
                    {"retryAfter": seconds},
                    message=f"more than {self.buckets.rate:g} requests per second from {address}",
                    headers={"Retry-After": seconds},
                )
                await error_response(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)
