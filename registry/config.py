"""One typed settings object: YAML file < `REGISTRY_*` environment < command-line flags.

Every knob lives in `Settings`; a YAML key, an environment variable (`REGISTRY_` + the upper-cased
field name) and a `serve` flag all name the same field, so the three sources cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "REGISTRY_"


def default_data_dir() -> Path:
    """Per-user data folder, as XDG asks: `$XDG_DATA_HOME/registry`, else `~/.local/share/registry`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "registry"


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:5000"
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    # Empty means the embedded SQLite index inside data_dir.
    database_url: str = ""
    # Empty means `<data_dir>/blobs`.
    storage_root: str = ""
    # Server processes; each is a full event loop. 0 means one per CPU core.
    workers: int = 1
    log_level: str = "info"
    # Seconds an idle upload session is kept before the purger removes it and its staged bytes.
    upload_expiry: int = 24 * 3600
    # Seconds SIGTERM waits for in-flight requests before closing.
    shutdown_timeout: float = 30.0

    @property
    def host(self) -> str:
        host, _, _ = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def index_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'index.db'}"

    @property
    def blob_root(self) -> Path:
        return Path(self.storage_root) if self.storage_root else self.data_dir / "blobs"

    def with_overrides(self, values: Mapping[str, Any]) -> Settings:
        return dataclasses.replace(self, **_coerce_all(values))


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if kind is bool:
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name!r}: cannot read {value!r} as {kind.__name__}") from exc


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    kinds = _field_types()
    unknown = set(values) - set(kinds)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return {name: _coerce(name, kinds[name], value) for name, value in values.items()}


def load_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from all three sources; later sources win."""
    values: dict[str, Any] = {}
    if config_file is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(os.environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping of settings")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
    for name in _field_types():
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Settings().with_overrides(values)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (a server worker) load the same settings."""
    return {ENV_PREFIX + f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}
