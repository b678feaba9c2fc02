"""One typed settings tree: YAML file < `REGISTRY_*` environment < command-line flags.

Every knob is a leaf of `Settings`, directly or inside a section (a field whose type is itself a frozen
dataclass, e.g. `gc: GcSettings`). A leaf's path names it everywhere: the YAML key (`gc: {grace: 1h}`,
nested as Distribution's `config.yml` nests), the environment variable (`REGISTRY_` + the path joined
by `_`, upper-cased: `REGISTRY_GC_GRACE`) and the flag (`--gc-grace`), so the sources cannot drift
apart. A leaf may hold a list or mapping (a tuple of rule dataclasses, say): in the environment and on
the command line it is written as YAML or JSON text.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from registry.lifecycle.settings import ImmutableTagSettings, QuotaSettings, RetentionSettings

ENV_PREFIX = "REGISTRY_"
AUTH_MODES = ("none", "basic", "token")
LOG_FORMATTERS = ("text", "json")
STORAGE_KINDS = ("filesystem", "s3")
SERVERS = ("granian", "hypercorn")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_PORT = 5000
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
# Every numeric setting is at least 0; these must be above it (0 would mean no time, no room, no one).
POSITIVE = frozenset(
    {
        "upload_expiry",
        "body_read_timeout",
        "idle_timeout",
        "max_header_size",
        "rate_limit_burst",
        "token_lifetime",
        "login_failures_per_user",
        "login_failures_per_address",
        "login_failure_window",
        "scrub_rate",
    }
)
# Settings that name files the server reads at start; of those, the comma-separated lists of files.
FILE_SETTINGS = ("tls_cert", "tls_key", "tls_client_ca", "htpasswd", "access_rules", "token_trusted_keys")
LIST_SETTINGS = ("token_trusted_keys",)
# REGISTRY_* variables that are not settings: the config file, the client's store and credentials file,
# the test suite's switch.
OTHER_VARIABLES = frozenset(
    {"REGISTRY_CONFIG", "REGISTRY_CLIENT_ROOT", "REGISTRY_AUTH_FILE", "REGISTRY_TEST_STRICT"}
)
# The top-level keys of Distribution's nested configuration: its variables are REGISTRY_<KEY>_...
DISTRIBUTION_SECTIONS = frozenset(
    {
        "VERSION", "LOG", "LOGLEVEL", "STORAGE", "AUTH", "MIDDLEWARE", "REPORTING", "HTTP", "NOTIFICATIONS",
        "REDIS", "HEALTH", "PROXY", "CATALOG", "VALIDATION", "POLICY", "COMPATIBILITY",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Leaf:
    """One setting of the tree: its path from the root, type and default, and the names derived from
    the path for YAML, the environment and the command line."""

    path: tuple[str, ...]
    kind: Any
    default: Any
    positive: bool

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()

    @property
    def dest(self) -> str:
        return "_".join(self.path)

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def scalar(self) -> bool:
        return _is_scalar(self.kind)


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _is_scalar(kind: Any) -> bool:
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return kind in (str, int, float, bool, Path, Duration)


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION = re.compile(f"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration as Distribution's config.yml writes it (Go's `500ms`, `1s`, `1m30s`), or
    in a plain number of seconds (`0.5`), as this registry's other settings are written."""
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration: write seconds (30) or a Go duration (500ms, 1m30s)")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


class Duration(float):
    """Seconds, read from a number or a duration string (`parse_duration`): the type of every setting
    that Distribution writes as a duration, so each reads `500ms` the same way."""

    def __new__(cls, value: object = 0.0) -> Duration:
        if isinstance(value, str):
            return super().__new__(cls, parse_duration(value.strip()))
        return super().__new__(cls, value)  # type: ignore[arg-type]


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _walk(cls: type, prefix: tuple[str, ...]) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    found: list[Leaf] = []
    for field in dataclasses.fields(cls):
        kind, path = hints[field.name], (*prefix, field.name)
        if is_section(kind):
            found.extend(_walk(kind, path))
        else:
            positive = field.metadata.get("positive", False) or ".".join(path) in POSITIVE
            found.append(Leaf(path, kind, _default(field), positive))
    return found


@functools.cache
def leaves() -> tuple[Leaf, ...]:
    """Every setting of the tree, in declaration order."""
    found = _walk(Settings, ())
    dests = [leaf.dest for leaf in found]
    clash = next((dest for dest in dests if dests.count(dest) > 1), None)
    if clash:  # a programming error: two settings would share an environment variable and a flag
        raise RuntimeError(f"two settings share the name {clash!r}")
    return tuple(found)


def leaf_value(settings: object, path: tuple[str, ...]) -> Any:
    for name in path:
        settings = getattr(settings, name)
    return settings


def default_data_dir() -> Path:
    """Per-user data folder, as XDG asks: `$XDG_DATA_HOME/registry`, else `~/.local/share/registry`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "registry"


ONE_SECOND = Duration(1.0)
TEN_SECONDS = Duration(10.0)


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointIgnore:
    """Events an endpoint is not sent: those of these target media types, or of these actions."""

    mediatypes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationEndpoint:
    """One webhook receiver, keyed as Distribution's `notifications.endpoints[]`.

    `headers` maps a name to its values, as Distribution's does. `threshold` failures in a row mark the
    endpoint failing (a metric and a log line); each retry waits twice as long as the last, from
    `backoff` up to MAX_BACKOFF. `backlog` (ours) bounds the events waiting for it: beyond it new events
    are kept as failed, for `registry events retry`, instead of growing the queue without end.
    """

    name: str
    url: str
    headers: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    timeout: Duration = ONE_SECOND
    threshold: int = 10
    backoff: Duration = ONE_SECOND
    ignoredmediatypes: tuple[str, ...] = ()
    ignore: EndpointIgnore = EndpointIgnore()
    disabled: bool = False
    backlog: int = 10000

    def __post_init__(self) -> None:
        where = f"notifications endpoint {self.name!r}"
        if not self.name.strip():
            raise ValueError("setting 'notifications.endpoints': every endpoint needs a name")
        if not re.match(r"https?://", self.url):
            raise ValueError(f"{where}: url must be an http:// or https:// URL, not {self.url!r}")
        if self.timeout <= 0 or self.backoff <= 0 or self.threshold < 1 or self.backlog < 1:
            raise ValueError(f"{where}: timeout, backoff, threshold and backlog must be above 0")


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationSettings:
    endpoints: tuple[NotificationEndpoint, ...] = ()

    def __post_init__(self) -> None:
        names = [endpoint.name for endpoint in self.endpoints]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            raise ValueError(f"setting 'notifications.endpoints': two endpoints are named {twice!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class StorageDriverCheck:
    """Distribution's `health.storagedriver`: ask the store every `interval`; after `threshold` failures
    in a row /readyz answers 503 until a check passes. Off, /readyz asks the store on each call."""

    enabled: bool = False
    interval: Duration = TEN_SECONDS
    threshold: int = 3

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.threshold < 1:
            raise ValueError("settings 'health.storagedriver.interval' and 'threshold' must be above 0")


@dataclasses.dataclass(frozen=True, slots=True)
class HealthSettings:
    storagedriver: StorageDriverCheck = StorageDriverCheck()


@dataclasses.dataclass(frozen=True, slots=True)
class GcSettings:
    """The online garbage collector (registry/lifecycle/collector.py), run inside `registry serve`."""

    # Seconds between background collections (0 = off); one process of all servers sharing the index
    # runs each (a leader lock), the others skip it.
    interval: float = 3600.0
    # Seconds a blob pushed or mounted (and a manifest pushed) is spared, so a push in progress is never
    # collected, and that its bytes are kept after its records go. A grace shorter than a slow push takes
    # makes that push fail with MANIFEST_BLOB_UNKNOWN (the client pushes again).
    grace: float = 3600.0
    # Also collect untagged manifests that no index references (and their referrers).
    untagged: bool = False


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
    # Seconds start-up (of serve and every command that opens the index) waits for a PostgreSQL server
    # that does not answer yet (it may be starting beside the registry), trying each second; 0: once.
    database_wait: float = 30.0
    # Serve pulls only: every change under /v2/ is refused (maintenance; `registry gc` does not need it).
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

    # Webhooks (Distribution's `notifications`) and the background store check (its `health`).
    notifications: NotificationSettings = NotificationSettings()
    health: HealthSettings = HealthSettings()
    # Storage lifecycle (registry/lifecycle/settings.py): which tags and untagged manifests retention
    # deletes, how many bytes a namespace may hold, which tags may never move.
    retention: RetentionSettings = dataclasses.field(default_factory=RetentionSettings)
    quotas: QuotaSettings = dataclasses.field(default_factory=QuotaSettings)
    immutable_tags: ImmutableTagSettings = dataclasses.field(default_factory=ImmutableTagSettings)
    gc: GcSettings = dataclasses.field(default_factory=GcSettings)

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"setting 'auth': expected one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        if self.server not in SERVERS:
            raise ValueError(f"setting 'server': expected one of {', '.join(SERVERS)}, not {self.server!r}")
        if self.storage not in STORAGE_KINDS:
            raise ValueError(
                f"setting 'storage': expected one of {', '.join(STORAGE_KINDS)}, not {self.storage!r}"
            )
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(
                f"setting 'log_level': expected one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
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
        for leaf in leaves():
            _check_range(leaf, leaf_value(self, leaf.path))
        split_listen(self.listen)
        if self.database_url:
            async_database_url(self.database_url)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics_listen.rpartition(":")[2]) if self.metrics_listen else None

    @property
    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(item.strip() for item in self.trusted_proxies.split(",") if item.strip())

    @property
    def index_url(self) -> str:
        if self.database_url:
            return async_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'index.db'}"

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
        """These settings with `values` (keyed by dotted path, `gc.grace`, or a top-level name) applied,
        each read as text from YAML or the environment would be."""
        by_key = {leaf.key: leaf for leaf in leaves()}
        unknown = sorted(set(values) - set(by_key))
        if unknown:
            close = difflib.get_close_matches(unknown[0], by_key, n=1)
            raise ValueError(
                f"unknown setting {unknown[0]!r}" + (f": did you mean {close[0]!r}?" if close else "")
            )
        nested: dict[str, Any] = {}
        for key, value in values.items():
            leaf = by_key[key]
            place = nested
            for name in leaf.path[:-1]:
                place = place.setdefault(name, {})
            place[leaf.path[-1]] = _coerce(key, leaf.kind, value)
        return _replace_tree(self, nested)


def _replace_tree(obj: Any, nested: Mapping[str, Any]) -> Any:
    changes = {
        name: _replace_tree(getattr(obj, name), value)
        if isinstance(value, dict) and is_section(type(getattr(obj, name)))
        else value
        for name, value in nested.items()
    }
    return dataclasses.replace(obj, **changes)


def _check_range(leaf: Leaf, value: object) -> None:
    """Every number a setting holds has a range: a negative, infinite or NaN one (or 0, where 0 would
    mean no time or no room at all) is a mistake, never a mode."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and leaf.positive):
        bound = "above 0" if leaf.positive else "0 or more"
        raise ValueError(f"setting {leaf.key!r} must be a number {bound}, not {value!r}")


# [IPv6] or a host without colons, then :PORT; either part may be left out (see split_listen).
_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Za-z:.%]+)\]|(?P<host>[^\s:\[\]]*))(?::(?P<port>\d{1,5}))?")


def split_listen(listen: str) -> tuple[str, int]:
    """The host and port of `listen`: HOST:PORT, [IPv6]:PORT, a HOST alone (on the default port), a
    PORT alone (on loopback, the default host: safe by default), or :PORT, which is every interface, as
    Distribution reads `http.addr: :5000` (the exposure check then wants authentication)."""
    text = str(listen).strip()
    if text.isdigit():
        host, port = "127.0.0.1", int(text)
    elif match := _LISTEN.fullmatch(text):
        host = match["v6"] or match["host"] or ("0.0.0.0" if match["port"] else "")
        port = int(match["port"] or DEFAULT_PORT)
    else:
        host, port = "", -1
    if not host or not 0 <= port <= 65535:
        raise ValueError(
            f"setting 'listen': {listen!r} is not an address to listen on: write HOST:PORT, [IPv6]:PORT, "
            "PORT (loopback) or :PORT (every interface), with a port from 0 to 65535"
        )
    return host, port


def async_database_url(url: str) -> str:
    """The index URL with the async driver the index needs: `postgresql://` and `postgres://` (what
    PostgreSQL and most tools write) get asyncpg; any other driver is refused, saying what to write."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme in ("postgresql", "postgres"):
        return "postgresql+asyncpg://" + rest
    if separator and scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return url
    raise ValueError(
        f"setting 'database_url': {scheme if separator else 'this URL'!r} is not supported: write "
        "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE, or leave it empty for SQLite in data_dir"
    )


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if not _is_scalar(kind):
        return _coerce_structure(name, kind, value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()  # YAML reads yes/no/on/off as booleans, 1/0 as numbers
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f"setting {name!r}: expected true or false (yes/no, on/off, 1/0), not {value!r}")
    if kind in (int, float, Duration) and (
        isinstance(value, bool) or (kind is int and isinstance(value, float))
    ):
        raise ValueError(f"setting {name!r}: expected a whole number, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        if kind is Duration:  # its message says how to write one
            raise ValueError(f"setting {name!r}: {exc}") from None
        raise ValueError(f"setting {name!r}: cannot read {value!r} as {kind.__name__}") from exc


def _coerce_structure(name: str, kind: Any, value: Any) -> Any:
    """A list (`tuple[X, ...]`), mapping (`dict[str, X]`) or record (a dataclass) setting, from YAML
    data or from YAML/JSON text (the environment, a flag); a list of words may also be comma-separated."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(value, str):
        text = value.strip()
        if origin is tuple and args[0] is str and not text.startswith("["):
            value = [word.strip() for word in text.split(",") if word.strip()]
        else:
            try:
                value = yaml.safe_load(text) if text else None
            except yaml.YAMLError:
                raise ValueError(f"setting {name!r}: cannot read {text!r} as YAML or JSON") from None
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError(f"setting {name!r}: expected a list, not {value!r}")
        return tuple(_coerce(f"{name}[{i}]", args[0], item) for i, item in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"setting {name!r}: expected a mapping, not {value!r}")
        return {str(key): _coerce(f"{name}.{key}", args[1], item) for key, item in value.items()}
    if is_section(kind):
        if not isinstance(value, Mapping):
            raise ValueError(f"setting {name!r}: expected a mapping, not {value!r}")
        hints = typing.get_type_hints(kind)
        fields = {f.name for f in dataclasses.fields(kind)}
        given = {str(key).replace("-", "_"): item for key, item in value.items()}
        unknown = sorted(set(given) - fields)
        if unknown:
            close = difflib.get_close_matches(unknown[0], fields, n=1)
            raise ValueError(
                f"setting {name!r}: unknown key {unknown[0]!r}"
                + (f": did you mean {close[0]!r}?" if close else "")
            )
        required = [f.name for f in dataclasses.fields(kind) if _default(f) is dataclasses.MISSING]
        missing = [key for key in required if key not in given]
        if missing:
            raise ValueError(f"setting {name!r}: key {missing[0]!r} is required")
        return kind(**{key: _coerce(f"{name}.{key}", hints[key], item) for key, item in given.items()})
    raise TypeError(f"setting {name!r} has a type settings cannot read: {kind!r}")


def _plain(value: Any) -> Any:
    """A structured setting as YAML/JSON data again (for the environment of worker processes)."""
    if is_section(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return str(value) if isinstance(value, Path) else value


def _flatten(loaded: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """A YAML mapping as dotted keys: a key naming a section opens it; anything else is a leaf."""
    sections = {leaf.path[: len(prefix) + 1] for leaf in leaves() if len(leaf.path) > len(prefix) + 1}
    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        path = (*prefix, str(key).replace("-", "_"))
        if path in sections:
            if not isinstance(value, Mapping):
                raise ValueError(f"setting {'.'.join(path)!r}: expected a mapping of settings")
            flat.update(_flatten(value, path))
        else:
            flat[".".join(path)] = value
    return flat


def load_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from all three sources; later sources win."""
    values: dict[str, Any] = {}
    if config_file is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(os.environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        values.update(_flatten(_read_config_file(config_file)))
    for leaf in leaves():
        env = os.environ.get(leaf.env)
        if env is not None:
            values[leaf.key] = env
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Settings().with_overrides(values)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist: check --config or REGISTRY_CONFIG") from None
    except OSError as error:
        raise ValueError(f"cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path}{where}: {problem}: fix the YAML there") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return loaded


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """A warning for each REGISTRY_* variable that sets nothing (a typo is otherwise silently ignored),
    naming the closest setting's variable, or, for Distribution's nested ones, saying so."""
    known = [leaf.env for leaf in leaves()]
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known or variable in OTHER_VARIABLES:
            continue
        if variable.removeprefix(ENV_PREFIX).split("_")[0] in DISTRIBUTION_SECTIONS:
            warnings.append(
                f"{variable} is Distribution's nested configuration, not supported yet: ignored "
                "(see the README for the settings this registry reads)"
            )
            continue
        close = difflib.get_close_matches(variable, known, n=1)
        warnings.append(
            f"{variable} is not a setting: ignored" + (f" (did you mean {close[0]}?)" if close else "")
        )
    return warnings


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (a server worker) load the same settings."""
    environment = {}
    for leaf in leaves():
        value = leaf_value(settings, leaf.path)
        environment[leaf.env] = str(value) if leaf.scalar else json.dumps(_plain(value))
    return environment
