"""registry: a private OCI / Docker container registry.

The public names load on first use: the client commands (`registry pull`, `run`, ...) import this
package too, and must not pay for the server's imports (starlette, SQLAlchemy) at every start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.app import Registry, create_app
    from registry.config import Settings, load_settings

__all__ = ["Registry", "Settings", "create_app", "load_settings"]

_HOMES = {
    "Registry": "registry.app",
    "create_app": "registry.app",
    "Settings": "registry.config",
    "load_settings": "registry.config",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
