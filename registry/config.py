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
AUTH_MODES = ("none", "basic", "token")
LOG_FORMATTERS = ("text", "json")
STORAGE_KINDS = ("filesystem", "s3")
SERVERS = ("granian", "hypercorn")


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
    # Where blobs live: "filesystem" (under storage_root) or "s3" (a bucket several servers may share).
    storage: str = "filesystem"
    # Empty means `<data_dir>/blobs`.
    storage_root: str = ""
    # The S3 store: bucket, key prefix, endpoint (empty means AWS; set for MinIO, Ceph and the like) and
    # region. Credentials come from boto3's usual chain (AWS_* variables, profiles, instance roles)
    # unless both keys are given here.
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    # The HTTP engine serving the app: "granian" (Rust, the faster) or "hypercorn" (pure Python).
    server: str = "granian"
    # Server processes; each is a full event loop. 0 means one per CPU core.
    workers: int = 1
    log_level: str = "info"
    # "text" (one line each: time, level, logger, request id, message; access lines in common log
    # format) or "json" (one object a line), as Distribution's `log.formatter`.
    log_formatter: str = "text"
    # One line per request (logger `registry.access`): address, user, request line, status, bytes sent,
    # duration, repository and request id.
    access_log: bool = True
    # Prometheus metrics at /metrics. metrics_listen: serve them (and /healthz, /readyz) only on this
    # HOST:PORT, over plain HTTP, as Distribution's `http.debug.addr`; empty means on `listen`.
    # metrics_htpasswd: an htpasswd file whose users alone may scrape them (Basic auth).
    metrics_enabled: bool = True
    metrics_listen: str = ""
    metrics_htpasswd: str = ""
    # Seconds an idle upload session is kept before the purger removes it and its staged bytes.
    upload_expiry: int = 24 * 3600
    # Seconds SIGTERM waits for in-flight requests before closing.
    shutdown_timeout: float = 30.0
    # Serve pulls only: every change under /v2/ is refused. Set it while `registry gc` runs.
    read_only: bool = False
    # Seconds a request body may send nothing before the request is abandoned (an upload's chunk rolls
    # back) and its connection closed; seconds an idle keep-alive connection (or one still sending its
    # headers) is kept; the most bytes of request headers accepted (431 beyond, on HTTP/1.1).
    body_read_timeout: float = 60.0
    idle_timeout: float = 15.0
    max_header_size: int = 64 * 1024
    # Open upload sessions one repository may have; a POST beyond it is refused (429). 0: no limit.
    max_uploads_per_repository: int = 1000
    # Requests per second each client address may make (behind trusted_proxies, the forwarded one),
    # with bursts of up to rate_limit_burst; beyond it, 429 with Retry-After. 0 turns it off. Counted
    # per server process.
    rate_limit: float = 0.0
    rate_limit_burst: int = 50

    # Who may do what. "none" is only allowed on a loopback address unless allow_anonymous_remote.
    auth: str = "none"
    allow_anonymous_remote: bool = False
    # An htpasswd file (bcrypt entries, as Distribution reads them) whose users may log in beside the
    # index's own users.
    htpasswd: str = ""
    # A YAML file of access rules (see registry/auth/access.py); empty means the default rule:
    # every authenticated user may pull and push everything, anonymous callers nothing.
    access_rules: str = ""
    # Serve HTTPS with this PEM certificate chain and key; with tls_client_ca, require client certificates
    # issued by that CA bundle (mTLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # The URL clients reach the registry at (e.g. behind a TLS-terminating proxy), for absolute URLs;
    # empty means from the request's X-Forwarded-Proto/Host or Host.
    external_url: str = ""
    # Comma-separated addresses of proxies whose X-Forwarded-For names the real client (audit log and
    # rate limits); from anyone else the header is ignored.
    trusted_proxies: str = ""
    # Token authentication: the realm clients fetch tokens from (empty means this server's /auth/token),
    # the issuer and service (audience) names, the signing key (a PEM file, generated on first start;
    # empty means <data_dir>/token.key) and how long a token lives, in seconds.
    token_realm: str = ""
    token_issuer: str = "registry"
    token_service: str = "registry"
    token_key: str = ""
    token_lifetime: int = 300
    # An external token service this registry also trusts: comma-separated issuer names, and
    # comma-separated files of its public keys (PEM keys or certificates, or a JWKS document).
    token_trusted_issuers: str = ""
    token_trusted_keys: str = ""
    # Failed logins allowed per user and per client address within login_failure_window seconds;
    # beyond them logins are refused (429) until the window has passed. Counted per server process.
    login_failures_per_user: int = 10
    login_failures_per_address: int = 50
    login_failure_window: float = 300.0

    # The background scrub (`registry scrub` inside the server): seconds between full passes (0 = off),
    # and the most bytes per second it reads, so that it stays out of the way of pulls.
    scrub_interval: float = 0.0
    scrub_rate: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"setting 'auth': expected one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        if self.server not in SERVERS:
            raise ValueError(f"setting 'server': expected one of {', '.join(SERVERS)}, not {self.server!r}")
        if self.storage not in STORAGE_KINDS:
            raise ValueError(
                f"setting 'storage': expected one of {', '.join(STORAGE_KINDS)}, not {self.storage!r}"
            )
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("setting 'storage: s3' needs 's3_bucket'")
        if bool(self.s3_access_key) != bool(self.s3_secret_key):
            raise ValueError("settings 's3_access_key' and 's3_secret_key' go together")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("settings 'tls_cert' and 'tls_key' go together")
        if self.log_formatter not in LOG_FORMATTERS:
            raise ValueError(
                f"setting 'log_formatter': expected one of {', '.join(LOG_FORMATTERS)}, "
                f"not {self.log_formatter!r}"
            )
        if self.metrics_listen and self.metrics_listen.rpartition(":")[2] == self.listen.rpartition(":")[2]:
            raise ValueError("setting 'metrics_listen' needs a port of its own, not the one of 'listen'")
        if self.metrics_listen and self.server == "granian":
            raise ValueError(
                "setting 'metrics_listen' needs 'server: hypercorn' (granian serves one address); "
                "or leave it empty to serve /metrics on the main address"
            )
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("setting 'tls_client_ca' needs 'tls_cert' and 'tls_key'")
        for name in ("body_read_timeout", "idle_timeout", "max_header_size", "rate_limit_burst"):
            if getattr(self, name) <= 0:
                raise ValueError(f"setting {name!r} must be above 0, not {getattr(self, name)!r}")
        for name in ("max_uploads_per_repository", "rate_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"setting {name!r} must not be negative, not {getattr(self, name)!r}")

    @property
    def host(self) -> str:
        host, _, _ = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics_listen.rpartition(":")[2]) if self.metrics_listen else None

    @property
    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(item.strip() for item in self.trusted_proxies.split(",") if item.strip())

    @property
    def index_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'index.db'}"

    @property
    def blob_root(self) -> Path:
        return Path(self.storage_root) if self.storage_root else self.data_dir / "blobs"

    @property
    def token_key_path(self) -> Path:
        return Path(self.token_key) if self.token_key else self.data_dir / "token.key"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

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
