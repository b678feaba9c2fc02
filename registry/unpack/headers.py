"""Header fields a hostile tar can set to what no system call takes, refused before any is used.

tarfile takes PAX records as they come: `mtime=inf` or `nan`, a 30-digit uid, a path, link target or
xattr name with a NUL byte. Passed on, these raise OverflowError or ValueError from os.utime, os.chown,
os.open and os.setxattr, which are not refusals the unpacker can name; checked here, they are.
"""

from __future__ import annotations

import math
import tarfile
from typing import Final

# Linux ids are 32 bits, and 2**32 - 1 means "leave unchanged" to chown.
MAX_ID: Final = 2**32 - 2
# Times are set in nanoseconds, an int64.
MAX_SECONDS: Final = (2**63 - 1) // 1_000_000_000


class BadHeader(ValueError):
    """A tar member's header holds a value no file can have."""


def check(member: tarfile.TarInfo) -> None:
    """Raise BadHeader when a field of `member` cannot be applied to a file."""
    names = [member.name, member.linkname, *member.pax_headers]
    if any("\x00" in name for name in names):
        raise BadHeader("a NUL byte in a name, link target or extended attribute name")
    if not (math.isfinite(member.mtime) and abs(member.mtime) <= MAX_SECONDS):
        raise BadHeader(f"modification time {member.mtime!r} out of range")
    for field, value in (("uid", member.uid), ("gid", member.gid)):
        if not 0 <= value <= MAX_ID:
            raise BadHeader(f"{field} {value} out of range")
