"""Turning `-u`/`User` (name or uid, optionally :group or :gid) into IDs with the container's own
/etc/passwd and /etc/group, read from inside the container's root, never the host's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: list[int]
    home: str


def _entries(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(spec: str, root: Path = Path("/")) -> Identity:
    """As Docker: a numeric uid need not exist in /etc/passwd (its group is then 0); a name must."""
    user, _, group = spec.partition(":")
    passwd = [e for e in _entries(root / "etc/passwd") if len(e) >= 7]
    groups = [e for e in _entries(root / "etc/group") if len(e) >= 4]
    user = user or "0"
    match = next((e for e in passwd if e[0] == user or (user.isdigit() and e[2] == user)), None)
    if match is None and not user.isdigit():
        raise ValueError(f"unable to find user {user}: no matching entries in passwd file")
    uid = int(match[2]) if match else int(user)
    gid = int(match[3]) if match else 0
    home = match[5] if match else "/"
    name = match[0] if match else None
    if group:
        found = next((e for e in groups if e[0] == group or (group.isdigit() and e[2] == group)), None)
        if found is None and not group.isdigit():
            raise ValueError(f"unable to find group {group}: no matching entries in group file")
        gid = int(found[2]) if found else int(group)
    supplementary = [int(e[2]) for e in groups if name is not None and name in e[3].split(",")]
    return Identity(uid, gid, sorted({gid, *supplementary}), home)
