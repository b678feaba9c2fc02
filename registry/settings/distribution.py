"""What a Distribution `config.yml` (and its REGISTRY_* variables) may hold that this registry does not
read, and the flat keys this registry read before its settings took Distribution's layout.

Neither is silently dropped: a Distribution key we do not support is named in a warning (the file still
runs, as the same file ran under Distribution); an old flat key still works, with a warning naming the
new one, so that existing files and environments keep working while they are updated.
"""

from __future__ import annotations

from collections.abc import Mapping

from registry.settings.values import ENV_PREFIX, FALSE_WORDS, TRUE_WORDS

# Distribution's keys this registry does not read, each with why (or what to use instead). A key
# names its whole subtree. Keys this registry reads are settings and never looked up here.
UNSUPPORTED: Mapping[str, str] = {
    "loglevel": "use log.level",
    "log.fields": "every line carries the request id instead",
    "log.hooks": "",
    "log.reportcaller": "",
    "storage.filesystem.maxthreads": "",
    "storage.inmemory": "only the filesystem and s3 stores exist here",
    "storage.azure": "only the filesystem and s3 stores exist here",
    "storage.gcs": "only the filesystem and s3 stores exist here",
    "storage.swift": "only the filesystem and s3 stores exist here",
    "storage.oss": "only the filesystem and s3 stores exist here",
    "storage.cache": "the index serves blob descriptors",
    "storage.tag": "",
    "storage.s3.forcepathstyle": "",
    "storage.s3.accelerate": "",
    "storage.s3.encrypt": "use the bucket's default encryption",
    "storage.s3.keyid": "use the bucket's default encryption",
    "storage.s3.secure": "write the scheme in storage.s3.regionendpoint",
    "storage.s3.skipverify": "",
    "storage.s3.v4auth": "requests are always signed with v4",
    "storage.s3.chunksize": "",
    "storage.s3.multipartcopychunksize": "",
    "storage.s3.multipartcopymaxconcurrency": "",
    "storage.s3.multipartcopythresholdsize": "",
    "storage.s3.storageclass": "",
    "storage.s3.objectacl": "",
    "storage.s3.useragent": "",
    "storage.s3.usedualstack": "",
    "storage.s3.loglevel": "",
    "storage.s3.sessiontoken": "use AWS_SESSION_TOKEN",
    "storage.maintenance.uploadpurging.interval": "the purge runs every quarter of the age (at most hourly)",
    "storage.maintenance.uploadpurging.dryrun": "",
    "auth.silly": "use auth.htpasswd or auth.token",
    "auth.token.autoredirect": "",
    "auth.token.jwks": "use tokens.trusted_keys (it reads JWKS documents)",
    "auth.token.signingalgorithms": "",
    "middleware": "",
    "reporting": "",
    "http.net": "only TCP is served",
    "http.prefix": "serve behind a proxy that strips the prefix",
    "http.relativeurls": "",
    "http.headers": "",
    "http.http2": "",
    "http.h2c": "",
    "http.tls.letsencrypt": "use certificates from an ACME client",
    "http.tls.minimumtls": "TLS 1.2 is the minimum",
    "http.tls.ciphersuites": "",
    "http.debug.prometheus.path": "metrics are served at /metrics",
    "notifications.events": "every event's target is sent as Distribution sends it by default",
    "redis": "",
    "health.file": "",
    "health.http": "",
    "health.tcp": "",
    "proxy": "pull-through caching is not supported",
    "compatibility": "",
    "validation": "",
    "catalog": "",
    "policy": "",
}
# Distribution's keys that need nothing here: what they ask for is how this registry works anyway.
NEEDLESS: Mapping[str, str] = {
    "http.secret": "upload state lives in the index, not in signed cookies",
}

# Our flat keys before the settings took Distribution's layout, and their new paths.
RENAMED: Mapping[str, str] = {
    "listen": "http.addr",
    "database_url": "database.url",
    "storage_root": "storage.filesystem.rootdirectory",
    "s3_bucket": "storage.s3.bucket",
    "s3_prefix": "storage.s3.rootdirectory",
    "s3_endpoint_url": "storage.s3.regionendpoint",
    "s3_region": "storage.s3.region",
    "s3_access_key": "storage.s3.accesskey",
    "s3_secret_key": "storage.s3.secretkey",
    "server": "server.engine",
    "workers": "server.workers",
    "log_level": "log.level",
    "log_formatter": "log.formatter",
    "access_log": "log.accesslog.disabled",
    "metrics_enabled": "http.debug.prometheus.enabled",
    "metrics_listen": "http.debug.addr",
    "metrics_htpasswd": "metrics.htpasswd",
    "upload_expiry": "storage.maintenance.uploadpurging.age",
    "shutdown_timeout": "http.draintimeout",
    "database_wait": "database.wait",
    "read_only": "storage.maintenance.readonly.enabled",
    "body_read_timeout": "limits.body_read_timeout",
    "idle_timeout": "limits.idle_timeout",
    "max_header_size": "limits.max_header_size",
    "max_uploads_per_repository": "limits.max_uploads_per_repository",
    "rate_limit": "limits.rate",
    "rate_limit_burst": "limits.burst",
    "auth": "auth.mode",
    "allow_anonymous_remote": "auth.allow_anonymous_remote",
    "htpasswd": "auth.htpasswd.path",
    "access_rules": "rules.path",
    "tls_cert": "http.tls.certificate",
    "tls_key": "http.tls.key",
    "tls_client_ca": "http.tls.clientcas",
    "external_url": "http.host",
    "trusted_proxies": "server.trusted_proxies",
    "token_realm": "auth.token.realm",
    "token_issuer": "auth.token.issuer",
    "token_service": "auth.token.service",
    "token_key": "tokens.key",
    "token_lifetime": "tokens.lifetime",
    "token_trusted_issuers": "tokens.trusted_issuers",
    "token_trusted_keys": "tokens.trusted_keys",
    "login_failures_per_user": "limits.login_failures_per_user",
    "login_failures_per_address": "limits.login_failures_per_address",
    "login_failure_window": "limits.login_failure_window",
    "scrub_interval": "scrub.interval",
    "scrub_rate": "scrub.rate",
}
# Renamed settings whose meaning turned over with the name (`access_log: true` is `disabled: false`).
INVERTED = frozenset({"access_log"})
# The old `storage: filesystem|s3`: the store is now the section that is given, as in Distribution.
OLD_STORAGE_KEY = "storage"


def unsupported(key: str) -> tuple[str, str] | None:
    """The Distribution key (`key` or the subtree holding it) this registry does not read, and why."""
    for table in (UNSUPPORTED, NEEDLESS):
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in table:
                return prefix, table[prefix]
    return None


def unsupported_warning(key: str, where: str) -> str:
    found = unsupported(key)
    assert found is not None
    prefix, reason = found
    if prefix in NEEDLESS:
        return f"{where} {prefix!r} is not needed here: {reason}; ignored"
    return f"{where} {prefix!r} (Distribution's) is not supported: ignored" + (
        f" ({reason})" if reason else ""
    )


def renamed(old: str, value: object) -> tuple[str, object]:
    """The new key of an old flat one, and the value in the new key's sense."""
    new = RENAMED[old]
    if old in INVERTED:
        word = str(value).strip().lower()
        if not isinstance(value, bool) and word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(f"setting {old!r}: expected true or false, not {value!r}")
        value = not (value if isinstance(value, bool) else word in TRUE_WORDS)
    return new, value


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def unsupported_variable(variable: str) -> str | None:
    """The Distribution key an unknown REGISTRY_* variable would set, if it is one we do not read."""
    for key in (*UNSUPPORTED, *NEEDLESS):
        name = env_name(key)
        if variable == name or variable.startswith(name + "_"):
            return key
    return None
