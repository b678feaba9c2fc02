"""registry: a private OCI / Docker container registry."""

from registry.app import Registry, create_app
from registry.config import Settings, load_settings

__all__ = ["Registry", "Settings", "create_app", "load_settings"]
