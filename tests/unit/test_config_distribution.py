"""Distribution's `config.yml` read as Distribution reads it: its keys, its variables, its durations;
what this registry does not read named in a warning; our old flat names still working, with one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.config import Settings, SettingsError, load_settings, unknown_environment
from registry.settings.reference import render

ROOT = Path(__file__).resolve().parents[2]
# What Debian's docker-registry package installs as /etc/docker/registry/config.yml.
DEBIAN_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/docker/registry
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""
# A fuller one: S3, TLS with client certificates, notifications, purging, a debug server.
S3_CONFIG = """\
version: 0.1
log:
  level: warn
  formatter: json
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: AKIA
    secretkey: SECRET
    region: us-east-1
    regionendpoint: http://127.0.0.1:9000
    bucket: images
    rootdirectory: /registry
    encrypt: false
    secure: true
    v4auth: true
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:5443
  host: https://registry.example.com
  secret: asecretforlocaldevelopment
  draintimeout: 1m30s
  tls:
    certificate: /certs/domain.crt
    key: /certs/domain.key
    clientcas:
      - /certs/ca.pem
  debug:
    addr: 127.0.0.1:5001
    prometheus:
      enabled: true
      path: /metrics
auth:
  token:
    realm: https://auth.example.com/token
    service: my.registry
    issuer: my-auth
    rootcertbundle: /certs/auth.pem
notifications:
  endpoints:
    - name: alistener
      url: https://listener.example.com/event
      timeout: 500ms
redis:
  addr: localhost:6379
server:
  engine: hypercorn
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def _load(tmp_path: Path, text: str) -> tuple[Settings, list[str]]:
    config = tmp_path / "config.yml"
    config.write_text(text)
    warnings: list[str] = []
    return load_settings(config, warnings=warnings), warnings


def test_debian_config_reads_as_distribution_reads_it(tmp_path: Path) -> None:
    settings, warnings = _load(tmp_path, DEBIAN_CONFIG)
    assert settings.blob_root == Path("/var/lib/docker-registry")
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)  # `:5000`: every interface
    assert settings.auth.kind == "basic"  # an htpasswd section turns Basic authentication on
    assert settings.auth.htpasswd.realm == "basic-realm"
    assert settings.storage.delete.enabled and settings.storage.kind == "filesystem"
    named = " ".join(warnings)
    for key in ("log.fields", "storage.cache", "http.headers"):
        assert f"'{key}'" in named
    assert all("not supported" in line for line in warnings), warnings
    assert settings.health.storagedriver.enabled and settings.health.storagedriver.interval == 10.0


def test_s3_tls_token_config(tmp_path: Path) -> None:
    settings, warnings = _load(tmp_path, S3_CONFIG)
    s3 = settings.storage.s3
    assert settings.storage.kind == "s3"
    assert (s3.bucket, s3.region, s3.regionendpoint, s3.rootdirectory) == (
        "images",
        "us-east-1",
        "http://127.0.0.1:9000",
        "/registry",
    )
    assert (s3.accesskey, s3.secretkey) == ("AKIA", "SECRET")
    assert settings.storage.maintenance.uploadpurging.age == 168 * 3600
    assert settings.http.draintimeout == 90.0
    assert settings.http.tls.client_ca == "/certs/ca.pem"
    assert settings.scheme == "https" and settings.http.host == "https://registry.example.com"
    assert settings.auth.kind == "token" and settings.auth.token.issuer == "my-auth"
    assert settings.log.accesslog.disabled and settings.log.level == "warn"
    assert not settings.storage.delete.enabled
    named = " ".join(warnings)
    for key in ("storage.s3.encrypt", "storage.s3.secure", "storage.s3.v4auth", "redis", "http.secret"):
        assert f"'{key}'" in named, key
    assert "'storage.maintenance.uploadpurging.interval'" in named
    assert "'http.debug.prometheus.path'" in named
    assert "'storage.redirect'" not in named and settings.storage.redirect.disable  # read, as there


def test_distribution_variables_set_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", ":6000")
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/blobs")
    monkeypatch.setenv("REGISTRY_AUTH_HTPASSWD_PATH", "/etc/htpasswd")
    monkeypatch.setenv("REGISTRY_STORAGE_S3_BUCKET", "images")
    monkeypatch.setenv("REGISTRY_STORAGE_DELETE_ENABLED", "false")
    monkeypatch.setenv("REGISTRY_HTTP_DRAINTIMEOUT", "5s")
    settings = load_settings()
    assert settings.http.addr == ":6000" and settings.blob_root == Path("/srv/blobs")
    assert settings.auth.kind == "basic" and settings.storage.kind == "s3"
    assert not settings.storage.delete.enabled and settings.http.draintimeout == 5.0
    assert unknown_environment(os.environ) == []


def test_old_flat_names_still_work_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings, warnings = _load(
        tmp_path,
        "listen: 127.0.0.1:6001\nauth: basic\naccess_log: false\nstorage: s3\ns3_bucket: b\nworkers: 2\n",
    )
    assert settings.http.addr == "127.0.0.1:6001" and settings.auth.kind == "basic"
    assert settings.log.accesslog.disabled  # access_log: false, turned over
    assert settings.storage.kind == "s3" and settings.server.workers == 2
    assert "setting 'listen' is now 'http.addr': rename it" in warnings  # alias:
    monkeypatch.setenv("REGISTRY_TLS_CERT", "/c.pem")  # alias: the old name
    monkeypatch.setenv("REGISTRY_TLS_KEY", "/k.pem")  # alias: the old name
    monkeypatch.setenv("REGISTRY_HTTP_TLS_KEY", "/new.pem")  # the new name wins
    settings = load_settings()
    assert (settings.http.tls.certificate, settings.http.tls.key) == ("/c.pem", "/new.pem")


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "http: {addr: ':99999', draintimeout: soon}\nserver: {workers: -1, engine: apache}\n"
        "storage: {s3: {accesskey: A}}\nauth: {htpasswd: {path: [a, b]}}\nlimits: {burts: 3}\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    text = "\n".join(caught.value.problems)
    assert "http.draintimeout" in text and "auth.htpasswd.path" in text
    assert "did you mean 'limits.burst'" in text
    with pytest.raises(SettingsError) as caught:  # the cross-setting checks, once each value reads
        load_settings(config.with_name("ok.yml") if False else _rewrite(config))
    text = "\n".join(caught.value.problems)
    for key in ("http.addr", "server.workers", "server.engine", "storage.s3.secretkey"):
        assert key in text, key


def _rewrite(config: Path) -> Path:
    config.write_text(
        "http: {addr: ':99999'}\nserver: {workers: -1, engine: apache}\nstorage: {s3: {accesskey: A}}\n"
    )
    return config


def test_config_check_command(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(DEBIAN_CONFIG)
    bad.write_text("http: {addr: nowhere:port}\nstorage: {delete: {enabled: perhaps}}\nredis: {}\n")
    run = [sys.executable, "-m", "registry", "config", "check"]
    passed = subprocess.run([*run, str(good)], capture_output=True, text=True, env=_env())
    assert passed.returncode == 0, passed.stderr
    assert "'health'" not in passed.stderr and "ok (3 warning(s))" in passed.stdout  # health is read
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, env=_env())
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2, failed.stderr
    assert "'http.addr'" in errors[0] + errors[1] and "storage.delete.enabled" in errors[0] + errors[1]
    assert "'redis'" in failed.stderr and "Traceback" not in failed.stderr


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def test_the_committed_reference_is_current() -> None:
    """docs/configuration.md is `registry config reference`: regenerate it when a setting changes."""
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(Settings), "run: registry config reference > docs/configuration.md"


def test_old_flags_still_work_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from registry.cli import build_parser
    from registry.cli.options import settings_from

    args = build_parser().parse_args(
        ["serve", "--listen", "127.0.0.1:6002", "--read-only", "--no-access-log"]  # alias: old flags
    )
    settings = settings_from(args)
    assert settings.http.addr == "127.0.0.1:6002"
    assert settings.storage.maintenance.readonly.enabled and settings.log.accesslog.disabled
    warned = capsys.readouterr().err
    assert "--listen is now --http-addr" in warned and "--read-only is now" in warned
