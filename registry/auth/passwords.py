"""Password hashing and checking: scrypt for the index's users, bcrypt for htpasswd files.

scrypt (hashlib's, so no dependency) is memory-hard, which is what makes stolen hashes expensive to
attack on GPUs; its cost parameters are stored in each hash so they can be raised later without
invalidating old ones. htpasswd entries are checked with the `bcrypt` package because that is the only
format Distribution's htpasswd files hold (`htpasswd -B`), and an operator moving from Distribution keeps
their file. Every comparison is constant-time, and a missing user costs as much as a wrong password.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_PASSWORD_LENGTH = 8
_SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P = 14, 8, 1  # 16 MiB and about 50 ms per check
_SCRYPT_PREFIX = "$scrypt$"
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32)


def hash_password(password: str) -> str:
    """`$scrypt$ln=14,r=8,p=1$<salt>$<hash>` (base64, as passlib and Django spell scrypt hashes)."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
    return f"{_SCRYPT_PREFIX}ln={_SCRYPT_LOG_N},r={_SCRYPT_R},p={_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Check a password against a stored hash of either kind; anything unreadable is a mismatch."""
    try:
        if encoded.startswith(_SCRYPT_PREFIX):
            params, salt, expected = encoded[len(_SCRYPT_PREFIX) :].split("$")
            values = dict(item.split("=") for item in params.split(","))
            log_n, r, p = int(values["ln"]), int(values["r"]), int(values["p"])
            if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
                return False
            return hmac.compare_digest(_scrypt(password, _unb64(salt), log_n, r, p), _unb64(expected))
        if encoded.startswith(_BCRYPT_PREFIXES):
            import bcrypt  # loaded only where an htpasswd file is in use

            return bcrypt.checkpw(password.encode(), encoded.encode())
    except (ValueError, KeyError):
        return False
    return False


@functools.cache
def decoy_hash() -> str:
    """A hash to check against when the user does not exist, so that case takes as long as a wrong
    password and response times do not tell which names are users."""
    return hash_password(secrets.token_urlsafe(16))


def new_secret() -> str:
    """A service account's secret: 256 random bits, URL-safe so it survives any config file."""
    return secrets.token_urlsafe(32)


class Htpasswd:
    """An htpasswd file (`name:hash` lines), re-read whenever it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._entries: dict[str, str] = {}

    def lookup(self, name: str) -> str | None:
        stamp = self.path.stat().st_mtime
        if stamp != self._stamp:
            self._entries = self.parse(self.path.read_text())
            self._stamp = stamp
        return self._entries.get(name)

    @staticmethod
    def parse(text: str) -> dict[str, str]:
        entries = {}
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, colon, encoded = line.partition(":")
                if colon:
                    entries[name] = encoded
        return entries
