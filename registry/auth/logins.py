"""Checking a user name and password: the index's users first, then the htpasswd file, if any.

A check costs tens of milliseconds of KDF on purpose, run off the event loop. Basic-auth clients send
their password with every request, so a check that passed is remembered for a minute, keyed by an HMAC of
name and password under a per-process secret (never the password itself) and tied to the stored hash it
matched: the user and their groups are still looked up on every login, so a removed user, a new password
or a changed group applies at once. Tokens already issued live until they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections import OrderedDict

from registry.auth.audit import audit
from registry.auth.identity import Identity
from registry.auth.passwords import Htpasswd, decoy_hash, verify_password
from registry.auth.ratelimit import FailureLimiter
from registry.index import UserDirectory

CACHE_SECONDS = 60.0
MAX_CACHED = 10_000


class LoginThrottled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


def credential_stamp(password_hash: str) -> str:
    """A short fingerprint of a stored hash: refresh tokens carry it, so setting a new password (or
    removing the user) revokes them without any server-side token list."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class Logins:
    def __init__(
        self,
        users: UserDirectory,
        htpasswd: Htpasswd | None,
        per_user: FailureLimiter,
        per_address: FailureLimiter,
    ) -> None:
        self.users = users
        self.htpasswd = htpasswd
        self.per_user = per_user
        self.per_address = per_address
        self._secret = os.urandom(32)
        # HMAC(name, password) -> (the stored hash it matched, until when that is believed)
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    async def _lookup(self, name: str) -> tuple[Identity, str] | None:
        """The user's identity (with groups) and stored hash, from the index, else the htpasswd file."""
        record = await self.users.get_user(name)
        if record is not None:
            return Identity(name, frozenset(record.groups)), record.password_hash
        encoded = self.htpasswd.lookup(name) if self.htpasswd else None
        return (Identity(name), encoded) if encoded is not None else None

    async def account(self, name: str) -> tuple[Identity, str] | None:
        """The identity and credential stamp of a user that exists now, or None."""
        found = await self._lookup(name)
        return (found[0], credential_stamp(found[1])) if found else None

    async def login(self, name: str, password: str, address: str) -> Identity | None:
        """The identity these credentials prove, or None; LoginThrottled, before any check, when this
        user or address failed too often lately."""
        wait = max(self.per_user.retry_after(name), self.per_address.retry_after(address))
        if wait > 0:
            audit("login", name, address, outcome="throttled")
            raise LoginThrottled(wait)
        found = await self._lookup(name)
        key = hmac.digest(self._secret, f"{name}\0{password}".encode(), "sha256")
        cached = self._cache.get(key)
        # A remembered check counts only while the stored hash is the one it was made against.
        if (
            cached is not None
            and found is not None
            and cached[0] == found[1]
            and cached[1] > time.monotonic()
        ):
            return found[0]
        if not await asyncio.to_thread(_verify, password, found[1] if found else None):
            self.per_user.failed(name)
            self.per_address.failed(address)
            audit("login", name, address, outcome="failed")
            return None
        assert found is not None
        self.per_user.forget(name)
        self._cache[key] = (found[1], time.monotonic() + CACHE_SECONDS)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return found[0]


def _verify(password: str, encoded: str | None) -> bool:
    if encoded is None:
        # An unknown user still costs one hash check, so response times do not reveal who exists.
        verify_password(password, decoy_hash())
        return False
    return verify_password(password, encoded)
