"""One typed settings tree, laid out as Distribution's `config.yml`: YAML file < `REGISTRY_*` environment
< command-line flags.

What Distribution has keeps Distribution's key (`http.addr`, `storage.filesystem.rootdirectory`,
`auth.htpasswd.path`...), so a Distribution `config.yml` runs unchanged; what only this registry has lives
in sections of its own (`database`, `server`, `limits`, `tokens`, `scrub`...). A leaf's path names it
everywhere: the YAML key (nested), the environment variable (`REGISTRY_` + the path joined by `_`,
upper-cased: `REGISTRY_HTTP_ADDR`, as Distribution names them) and the flag (`--http-addr`), so the
sources cannot drift apart. `registry config reference` prints what every leaf means, from the `doc`
each one is declared with here.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from registry.lifecycle.settings import ImmutableTagSettings, QuotaSettings, RetentionSettings
from registry.settings import distribution
from registry.settings.notifications import HealthSettings, NotificationSettings
from registry.settings.values import (
    ENV_PREFIX,
    Leaf,
    check_range,
    coerce,
    leaf_value,
    plain,
    replace_tree,
    section,
    setting,
    walk,
)

AUTH_MODES = ("none", "basic", "token")
LOG_FORMATTERS = ("text", "json")
STORAGE_KINDS = ("filesystem", "s3")
SERVERS = ("granian", "hypercorn")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
DEFAULT_PORT = 5000
# REGISTRY_* variables that are not settings: the config file, the client's store and credentials file,
# the test suite's switches.
OTHER_VARIABLES = frozenset(
    {"REGISTRY_CONFIG", "REGISTRY_CLIENT_ROOT", "REGISTRY_AUTH_FILE", "REGISTRY_TEST_STRICT"}
)


class SettingsError(ValueError):
    """Every problem found in the settings at once, one line each, so that one run names them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def default_data_dir() -> Path:
    """Per-user data folder, as XDG asks: `$XDG_DATA_HOME/registry`, else `~/.local/share/registry`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "registry"


@dataclasses.dataclass(frozen=True, slots=True)
class AccessLogSettings:
    disabled: bool = setting(
        False,
        "No line per request (logger `registry.access`: address, user, request line, status, bytes sent, "
        "duration, repository and request id).",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = setting("info", "debug, info, warn (or warning) or error.")
    formatter: str = setting(
        "text",
        "`text` (one line each: time, level, logger, request id, message; access lines in common log "
        "format) or `json` (one object a line).",
    )
    accesslog: AccessLogSettings = section(AccessLogSettings, "The access log.")


@dataclasses.dataclass(frozen=True, slots=True)
class FilesystemSettings:
    rootdirectory: str = setting("", "Where blobs live; empty means `<data_dir>/blobs`.")


@dataclasses.dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str = setting("", "The bucket; setting it makes S3 the store (several servers may share it).")
    region: str = setting("", "The bucket's region.")
    regionendpoint: str = setting(
        "", "The endpoint URL; empty means AWS. Set it for MinIO, Ceph and the like."
    )
    rootdirectory: str = setting("", "The key prefix every object is stored under.")
    accesskey: str = setting(
        "",
        "Access key; with secretkey. Empty means boto3's usual chain (AWS_* variables, profiles, "
        "instance roles).",
    )
    secretkey: str = setting("", "Secret key; with accesskey.")


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteSettings:
    enabled: bool = setting(
        True,
        "DELETE of manifests, tags and blobs; `false` refuses them (405 UNSUPPORTED), as Distribution "
        "does. Unlike Distribution's, the default is on.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class UploadPurgingSettings:
    enabled: bool = setting(True, "Remove upload sessions idle for longer than age, and their staged bytes.")
    age: int = setting(
        24 * 3600,
        "Seconds (or a duration: `168h`) an idle upload session is kept before it and its staged bytes "
        "are removed.",
        positive=True,
        duration=True,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ReadOnlySettings:
    enabled: bool = setting(
        False, "Serve pulls only: every change under /v2/ is refused. Set it while `registry gc` runs."
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MaintenanceSettings:
    uploadpurging: UploadPurgingSettings = section(UploadPurgingSettings, "Abandoned uploads.")
    readonly: ReadOnlySettings = section(ReadOnlySettings, "Read-only mode.")


@dataclasses.dataclass(frozen=True, slots=True)
class RedirectSettings:
    disable: bool = setting(
        True,
        "Blob GETs from S3 stream through the server. `false`: they answer 307 to a presigned URL of the "
        "object (valid 20 minutes), so the bytes go from the bucket to the client directly. (Distribution "
        "redirects by default; streaming is the default here, as the server then sees every pull.)",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class StorageSettings:
    filesystem: FilesystemSettings = section(FilesystemSettings, "The filesystem store (the default).")
    s3: S3Settings = section(S3Settings, "The S3 store, used when `bucket` is set.")
    delete: DeleteSettings = section(DeleteSettings, "Deletes.")
    maintenance: MaintenanceSettings = section(MaintenanceSettings, "Upkeep.")
    redirect: RedirectSettings = section(RedirectSettings, "S3 blob GETs answered by the bucket itself.")

    @property
    def kind(self) -> str:
        """The store in use: S3 when its section names a bucket (Distribution picks the store by the
        section given), else the filesystem."""
        return "s3" if self.s3.bucket else "filesystem"


@dataclasses.dataclass(frozen=True, slots=True)
class TlsSettings:
    certificate: str = setting("", "Serve HTTPS with this PEM certificate chain (with key).", files="one")
    key: str = setting("", "The certificate's PEM private key.", files="one")
    clientcas: tuple[str, ...] = setting(
        (), "Require client certificates issued by this CA bundle (mTLS); one file.", files="list"
    )

    @property
    def client_ca(self) -> str:
        return self.clientcas[0] if self.clientcas else ""


@dataclasses.dataclass(frozen=True, slots=True)
class PrometheusSettings:
    enabled: bool = setting(True, "Prometheus metrics at /metrics.")


@dataclasses.dataclass(frozen=True, slots=True)
class DebugSettings:
    addr: str = setting(
        "",
        "Serve /metrics (and /healthz, /readyz) only on this HOST:PORT, over plain HTTP; needs "
        "`server.engine: hypercorn`. Empty means on http.addr.",
    )
    prometheus: PrometheusSettings = section(PrometheusSettings, "Metrics.")


@dataclasses.dataclass(frozen=True, slots=True)
class HttpSettings:
    addr: str = setting(
        "127.0.0.1:5000",
        "Where to listen: HOST:PORT, [IPv6]:PORT, PORT (loopback) or :PORT (every interface, as "
        "Distribution reads it; then authentication is required).",
    )
    host: str = setting(
        "",
        "The URL clients reach the registry at (e.g. behind a TLS-terminating proxy), for absolute URLs; "
        "empty means from the request's X-Forwarded-Proto/Host or Host.",
    )
    draintimeout: float = setting(
        30.0, "Seconds (or a duration) SIGTERM waits for in-flight requests.", duration=True
    )
    tls: TlsSettings = section(TlsSettings, "HTTPS.")
    debug: DebugSettings = section(DebugSettings, "Metrics and probes.")


@dataclasses.dataclass(frozen=True, slots=True)
class HtpasswdSettings:
    realm: str = setting("", "The realm of the Basic challenge; empty means auth.token.service.")
    path: str = setting(
        "",
        "An htpasswd file (bcrypt entries) whose users may log in beside the index's own users; "
        "setting it turns Basic authentication on.",
        files="one",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class TokenAuthSettings:
    realm: str = setting(
        "", "Where clients fetch tokens; empty means this server's own token endpoint, /auth/token."
    )
    service: str = setting("registry", "The service (audience) tokens are issued for.")
    issuer: str = setting("registry", "The issuer name of tokens.")
    rootcertbundle: str = setting(
        "",
        "Certificates (PEM) of an external token service whose tokens, issued as `issuer`, are "
        "trusted, as in Distribution. Setting it (or realm) turns token authentication on.",
        files="one",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSettings:
    mode: str = setting(
        "",
        "none, basic or token. Empty means as Distribution: token when auth.token names a realm or "
        "rootcertbundle, basic when auth.htpasswd names a path, else none.",
    )
    allow_anonymous_remote: bool = setting(
        False, "Allow no authentication on an address other than loopback."
    )
    htpasswd: HtpasswdSettings = section(HtpasswdSettings, "Basic authentication.")
    token: TokenAuthSettings = section(TokenAuthSettings, "Token authentication.")

    @property
    def kind(self) -> str:
        """The authentication in force: the mode, or the one the sections given imply."""
        if self.mode:
            return self.mode
        if self.token.realm or self.token.rootcertbundle:
            return "token"
        return "basic" if self.htpasswd.path else "none"


@dataclasses.dataclass(frozen=True, slots=True)
class TokensSettings:
    key: str = setting(
        "", "The PEM key tokens are signed with (generated on first start); empty means <data_dir>/token.key."
    )
    lifetime: int = setting(300, "Seconds a token lives.", positive=True, duration=True)
    trusted_issuers: str = setting("", "Comma-separated issuer names of external token services trusted.")
    trusted_keys: str = setting(
        "",
        "Comma-separated files of their public keys (PEM keys or certificates, or JWKS documents).",
        files="list",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = setting("", "postgresql://USER:PASSWORD@HOST:PORT/DATABASE; empty means SQLite in data_dir.")
    wait: float = setting(
        30.0,
        "Seconds start-up waits for a PostgreSQL server that does not answer yet, trying each second; "
        "0: once.",
        duration=True,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSettings:
    engine: str = setting("granian", "The HTTP engine: granian (the faster) or hypercorn (pure Python).")
    workers: int = setting(1, "Server processes, each a full event loop; 0 means one per CPU core.")
    trusted_proxies: str = setting(
        "",
        "Comma-separated addresses of proxies whose X-Forwarded-For names the real client (audit log and "
        "rate limits); from anyone else the header is ignored.",
    )
    read_cache: int = setting(
        48,
        "MiB each server process may keep of what pulls read, to answer them again from memory: a third "
        "for blobs up to 1 MiB (verified against their digest), a third for whole answers to repeated "
        "pulls (with SQLite, without auth or rate limits), a third for SQLite's query answers. The last "
        "two are kept only while the index is unchanged. 0: nothing is kept.",
    )

    @property
    def read_cache_share(self) -> int:
        """The bytes each of the three keeps of `read_cache` may hold."""
        return self.read_cache * 1024 * 1024 // 3


@dataclasses.dataclass(frozen=True, slots=True)
class LimitsSettings:
    body_read_timeout: float = setting(
        60.0,
        "Seconds a request body may send nothing before the request is abandoned (an upload's chunk "
        "rolls back).",
        positive=True,
        duration=True,
    )
    idle_timeout: float = setting(
        15.0,
        "Seconds an idle keep-alive connection (or one still sending its headers) is kept.",
        positive=True,
        duration=True,
    )
    max_header_size: int = setting(
        64 * 1024, "The most bytes of request headers accepted (431 beyond, on HTTP/1.1).", positive=True
    )
    max_uploads_per_repository: int = setting(
        1000, "Open upload sessions one repository may have; a POST beyond is refused (429). 0: no limit."
    )
    rate: float = setting(
        0.0,
        "Requests per second each client address may make; beyond, 429 with Retry-After. 0: off. "
        "Counted per server process.",
    )
    burst: int = setting(50, "Requests a client may make at once above the rate.", positive=True)
    login_failures_per_user: int = setting(
        10, "Failed logins allowed per user within login_failure_window (then 429).", positive=True
    )
    login_failures_per_address: int = setting(
        50, "Failed logins allowed per client address within login_failure_window.", positive=True
    )
    login_failure_window: float = setting(
        300.0, "Seconds failed logins are counted over.", positive=True, duration=True
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RulesSettings:
    path: str = setting(
        "",
        "A YAML file of access rules; empty means every authenticated user may pull and push "
        "everything, anonymous callers nothing.",
        files="one",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsSettings:
    htpasswd: str = setting("", "An htpasswd file whose users alone may scrape /metrics.")


@dataclasses.dataclass(frozen=True, slots=True)
class ScrubSettings:
    interval: float = setting(0.0, "Seconds between full background scrub passes; 0: off.", duration=True)
    rate: int = setting(
        8 * 1024 * 1024,
        "The most bytes per second the scrub reads, to stay out of pulls' way.",
        positive=True,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class GcSettings:
    """The online garbage collector (registry/lifecycle/collector.py), run inside `registry serve`."""

    interval: float = setting(
        3600.0,
        "Seconds between background collections; 0: off. One process of all the servers sharing the"
        " index runs each (a leader lock); the others skip it.",
        duration=True,
    )
    grace: float = setting(
        3600.0,
        "Seconds a new blob link or manifest is spared (so a push in progress is never collected) and a"
        " removed blob's bytes are kept. A grace shorter than a slow push takes fails that push with"
        " MANIFEST_BLOB_UNKNOWN (the client pushes again).",
        duration=True,
    )
    untagged: bool = setting(
        False, "Also collect untagged manifests no index references (and their referrers)."
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    version: str = setting("0.1", "Distribution's configuration version; 0.1 is the only one.")
    data_dir: Path = setting(
        doc="The registry's data folder (index, keys, blobs by default); empty means "
        "$XDG_DATA_HOME/registry.",
        factory=default_data_dir,
    )
    log: LogSettings = section(LogSettings, "Logging.")
    storage: StorageSettings = section(StorageSettings, "Where blobs live.")
    http: HttpSettings = section(HttpSettings, "The HTTP server.")
    auth: AuthSettings = section(AuthSettings, "Who may log in.")
    tokens: TokensSettings = section(TokensSettings, "Tokens this registry issues and trusts.")
    rules: RulesSettings = section(RulesSettings, "Who may do what.")
    database: DatabaseSettings = section(DatabaseSettings, "The index.")
    server: ServerSettings = section(ServerSettings, "Server processes.")
    limits: LimitsSettings = section(LimitsSettings, "Limits on what clients may ask.")
    metrics: MetricsSettings = section(MetricsSettings, "Who may read the metrics.")
    scrub: ScrubSettings = section(ScrubSettings, "The background scrub.")
    notifications: NotificationSettings = section(
        NotificationSettings, "Webhooks, in Distribution's envelope, from an outbox in the index."
    )
    health: HealthSettings = section(HealthSettings, "The background store check behind /readyz.")
    retention: RetentionSettings = section(
        RetentionSettings, "Which tags and untagged manifests retention deletes (registry/lifecycle)."
    )
    quotas: QuotaSettings = section(QuotaSettings, "How many bytes a namespace may hold.")
    immutable_tags: ImmutableTagSettings = section(ImmutableTagSettings, "Tags that may never move.")
    gc: GcSettings = section(GcSettings, "The online garbage collector (registry/lifecycle).")

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise SettingsError(problems)

    @property
    def host(self) -> str:
        return split_listen(self.http.addr)[0]

    @property
    def port(self) -> int:
        return split_listen(self.http.addr)[1]

    @property
    def metrics_port(self) -> int | None:
        return int(self.http.debug.addr.rpartition(":")[2]) if self.http.debug.addr else None

    @property
    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(item.strip() for item in self.server.trusted_proxies.split(",") if item.strip())

    @property
    def index_url(self) -> str:
        if self.database.url:
            return async_database_url(self.database.url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'index.db'}"

    @property
    def blob_root(self) -> Path:
        root = self.storage.filesystem.rootdirectory
        return Path(root) if root else self.data_dir / "blobs"

    @property
    def token_key_path(self) -> Path:
        return Path(self.tokens.key) if self.tokens.key else self.data_dir / "token.key"

    @property
    def scheme(self) -> str:
        return "https" if self.http.tls.certificate else "http"

    def with_overrides(self, values: Mapping[str, Any]) -> Settings:
        """These settings with `values` (keyed by dotted path, `http.addr`) applied, each read as text
        from YAML or the environment would be. Every bad value is named, not only the first."""
        by_key = {leaf.key: leaf for leaf in leaves()}
        nested: dict[str, Any] = {}
        problems = []
        for key, value in values.items():
            leaf = by_key.get(key)
            if leaf is None:
                problems.append(_unknown(key, by_key))
                continue
            place = nested
            for name in leaf.path[:-1]:
                place = place.setdefault(name, {})
            try:
                place[leaf.path[-1]] = coerce(leaf, value)
            except ValueError as error:
                problems.append(str(error))
        try:  # with the values that could be read: their checks too, so that all are named at once
            settings = replace_tree(self, nested)
        except SettingsError as error:
            problems.extend(error.problems)
        if problems:
            raise SettingsError(problems)
        return settings


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> list[str]:
    if value in allowed:
        return []
    return [f"setting {key!r}: expected one of {', '.join(allowed)}, not {value!r}"]


def _problems(settings: Settings) -> list[str]:
    """What is wrong with these settings, each naming the setting and what to write instead."""
    http, s3 = settings.http, settings.storage.s3
    problems = [
        *_one_of("auth.mode", settings.auth.mode, ("", *AUTH_MODES)),
        *_one_of("server.engine", settings.server.engine, SERVERS),
        *_one_of("log.level", settings.log.level.lower(), LOG_LEVELS),
        *_one_of("log.formatter", settings.log.formatter, LOG_FORMATTERS),
        *_one_of("version", settings.version, ("0.1",)),
    ]
    if bool(s3.accesskey) != bool(s3.secretkey):
        problems.append("settings 'storage.s3.accesskey' and 'storage.s3.secretkey' go together")
    if bool(http.tls.certificate) != bool(http.tls.key):
        problems.append("settings 'http.tls.certificate' and 'http.tls.key' go together")
    if http.tls.clientcas and not http.tls.certificate:
        problems.append("setting 'http.tls.clientcas' needs 'http.tls.certificate' and 'http.tls.key'")
    if len(http.tls.clientcas) > 1:
        problems.append("setting 'http.tls.clientcas': name one file (join the CA certificates into one)")
    for name, value in (("http.addr", http.addr), ("http.debug.addr", http.debug.addr)):
        if value or name == "http.addr":
            try:
                split_listen(value, name)
            except ValueError as error:
                problems.append(str(error))
    if http.debug.addr and http.debug.addr.rpartition(":")[2] == http.addr.rpartition(":")[2]:
        problems.append("setting 'http.debug.addr' needs a port of its own, not the one of 'http.addr'")
    if http.debug.addr and settings.server.engine == "granian":
        problems.append(
            "setting 'http.debug.addr' needs 'server.engine: hypercorn' (granian serves one address); "
            "or leave it empty to serve /metrics on the main address"
        )
    for leaf in leaves():
        problem = check_range(leaf, leaf_value(settings, leaf.path))
        if problem:
            problems.append(problem)
    if settings.database.url:
        try:
            async_database_url(settings.database.url)
        except ValueError as error:
            problems.append(str(error))
    return problems


@functools.cache
def leaves() -> tuple[Leaf, ...]:
    """Every setting of the tree, in declaration order."""
    found = walk(Settings)
    dests = [leaf.dest for leaf in found]
    clash = next((dest for dest in dests if dests.count(dest) > 1), None)
    if clash:  # a programming error: two settings would share an environment variable and a flag
        raise RuntimeError(f"two settings share the name {clash!r}")
    return tuple(found)


@functools.cache
def _section_paths() -> frozenset[tuple[str, ...]]:
    return frozenset(leaf.path[:end] for leaf in leaves() for end in range(1, len(leaf.path)))


def _unknown(key: str, known: Mapping[str, Leaf]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown setting {key!r}" + (f": did you mean {close[0]!r}?" if close else "")


# [IPv6] or a host without colons, then :PORT; either part may be left out (see split_listen).
_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Za-z:.%]+)\]|(?P<host>[^\s:\[\]]*))(?::(?P<port>\d{1,5}))?")


def split_listen(listen: str, name: str = "http.addr") -> tuple[str, int]:
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
            f"setting {name!r}: {listen!r} is not an address to listen on: write HOST:PORT, [IPv6]:PORT, "
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
        f"setting 'database.url': {scheme if separator else 'this URL'!r} is not supported: write "
        "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE, or leave it empty for SQLite in data_dir"
    )


def _flatten(
    loaded: Mapping[str, Any], warnings: list[str], problems: list[str], prefix: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A YAML mapping as dotted keys: a key naming a section opens it, a leaf's is kept; an old flat
    key is renamed, a Distribution key not read here is warned about; anything else is a problem."""
    by_key = {leaf.key: leaf for leaf in leaves()}
    flat: dict[str, Any] = {}
    for name, value in loaded.items():
        path = (*prefix, str(name).replace("-", "_"))
        key = ".".join(path)
        if path in _section_paths() and isinstance(value, Mapping):
            flat.update(_flatten(value, warnings, problems, path))
        elif key in by_key:
            flat[key] = value
        elif not prefix and key == distribution.OLD_STORAGE_KEY:
            warnings.append(
                "setting 'storage' is no longer read: the store is S3 when storage.s3.bucket is set"
            )
            if value not in STORAGE_KINDS:
                problems.append(
                    f"setting 'storage': expected one of {', '.join(STORAGE_KINDS)}, not {value!r}"
                )
        elif not prefix and key in distribution.RENAMED:
            try:
                new, flat_value = distribution.renamed(key, value)
            except ValueError as error:
                problems.append(str(error))
                continue
            warnings.append(f"setting {key!r} is now {new!r}: rename it")
            try:  # a bad value is named as it was written
                flat.setdefault(new, coerce(by_key[new], flat_value))
            except ValueError as error:
                problems.append(f"{error} (written as {key!r})")
        elif distribution.unsupported(key):
            warnings.append(distribution.unsupported_warning(key, "setting"))
        elif path in _section_paths():
            problems.append(f"setting {key!r}: expected a mapping of settings")
        else:
            problems.append(_unknown(key, by_key))
    return flat


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    warnings: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from all three sources; later sources win. What is read but not used (old
    names, Distribution's keys this registry does not read) goes to `warnings`; every problem at once
    is a SettingsError."""
    environ = os.environ if environ is None else environ
    warnings = [] if warnings is None else warnings
    problems: list[str] = []
    values: dict[str, Any] = {}
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        values.update(_flatten(_read_config_file(config_file), warnings, problems))
    for old in distribution.RENAMED:  # the old names first: the new ones win
        variable = ENV_PREFIX + old.upper()
        if variable in environ:
            try:
                new, value = distribution.renamed(old, environ[variable])
            except ValueError as error:
                problems.append(str(error))
                continue
            values[new] = value
    for leaf in leaves():
        env = environ.get(leaf.env)
        if env is not None:
            values[leaf.key] = env
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = Settings().with_overrides(values)
    except SettingsError as error:
        problems.extend(error.problems)
    if problems:
        raise SettingsError(problems)
    return settings


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
    """A warning for each REGISTRY_* variable that sets nothing (a typo is otherwise silently ignored)
    naming the closest setting's variable, for each of Distribution's this registry does not read, and
    for each old name, naming the new one."""
    known = [leaf.env for leaf in leaves()]
    # A typo of an old name is suggested the new one.
    suggest = {
        **{ENV_PREFIX + old.upper(): distribution.env_name(new) for old, new in distribution.RENAMED.items()}
    }
    suggest.update({env: env for env in known})
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known or variable in OTHER_VARIABLES:
            continue
        old = variable.removeprefix(ENV_PREFIX).lower()
        if old in distribution.RENAMED:
            warnings.append(
                f"{variable} is now {distribution.env_name(distribution.RENAMED[old])}: rename it"
            )
        elif distribution.unsupported_variable(variable):
            warnings.append(
                distribution.unsupported_warning(distribution.unsupported_variable(variable), variable)
            )
        else:
            close = difflib.get_close_matches(variable, suggest, n=1)
            hint = f" (did you mean {suggest[close[0]]}?)" if close else ""
            warnings.append(f"{variable} is not a setting: ignored{hint}")
    return warnings


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (a server worker) load the same settings."""
    environment = {}
    for leaf in leaves():
        value = leaf_value(settings, leaf.path)
        environment[leaf.env] = str(value) if leaf.scalar else json.dumps(plain(value))
    return environment
