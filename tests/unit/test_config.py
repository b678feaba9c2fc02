"""Settings precedence: YAML file < REGISTRY_* environment < flags, with types checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import Settings, leaves, load_settings, settings_to_env, unknown_environment


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.http.addr == "127.0.0.1:5000"
    assert settings.data_dir == tmp_path / "registry"
    assert settings.index_url == f"sqlite+aiosqlite:///{tmp_path / 'registry' / 'index.db'}"
    assert settings.blob_root == tmp_path / "registry" / "blobs"


def test_file_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "registry.yaml"
    config.write_text(
        "http: {addr: 0.0.0.0:6000}\nserver: {workers: 3}\ndata-dir: /srv/registry\n"
        "storage: {maintenance: {uploadpurging: {age: 1m}}}\n"
    )
    from_file = load_settings(config)
    assert (from_file.http.addr, from_file.server.workers, from_file.data_dir) == (
        "0.0.0.0:6000",
        3,
        Path("/srv/registry"),
    )

    monkeypatch.setenv("REGISTRY_SERVER_WORKERS", "5")
    monkeypatch.setenv("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "90")
    from_env = load_settings(config)
    assert (from_env.server.workers, from_env.storage.maintenance.uploadpurging.age, from_env.http.addr) == (
        5,
        90,
        "0.0.0.0:6000",
    )

    from_flags = load_settings(config, {"server.workers": 7, "http.addr": None})
    assert from_flags.server.workers == 7
    assert from_flags.http.addr == "0.0.0.0:6000"  # a flag left unset does not override


def test_config_file_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("log: {level: debug}\n")
    monkeypatch.setenv("REGISTRY_CONFIG", str(config))
    assert load_settings().log.level == "debug"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nonsense_key: 1\n", "unknown setting"),
        ("server: {workers: many}\n", "cannot read"),
        ("- a list\n", "mapping"),
        ("http: {adr: ':5000'}\n", "did you mean 'http.addr'"),
        ("http: 5000\n", "'http': expected a mapping"),
        ("http: {addr: [1, 2]}\n", "expected a single value"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_settings(config)


def test_environment_round_trip_gives_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers rebuild their settings from the environment the parent exports."""
    original = Settings().with_overrides(
        {"http.addr": "127.0.0.1:7000", "server.workers": 2, "database.url": "postgresql+asyncpg://x/y"}
    )
    for name, value in settings_to_env(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_listen_address_parts() -> None:
    assert (
        Settings().with_overrides({"http.addr": "[::1]:5001"}).host,
        Settings().with_overrides({"http.addr": "[::1]:5001"}).port,
    ) == ("::1", 5001)
    assert Settings().with_overrides({"http.addr": "0.0.0.0:80"}).port == 80


NUMERIC = [leaf.key for leaf in leaves() if leaf.kind in (int, float)]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_has_a_range(name: str) -> None:
    """`upload_expiry: -1` or `shutdown_timeout: -5` must be refused, naming the setting."""
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(ValueError, match=name):
            load_settings(overrides={name: bad})


@pytest.mark.parametrize("value", ["maybe", "2", "", "truee", "-1"])
def test_booleans_take_only_clear_words(tmp_path: Path, value: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{maintenance: {{readonly: {{enabled: {value!r}}}}}}}\n")
    with pytest.raises(ValueError, match=r"storage\.maintenance\.readonly\.enabled"):
        load_settings(config)


@pytest.mark.parametrize(
    ("word", "meaning"),
    [("true", True), ("yes", True), ("1", True), ("On", True), ("false", False), ("no", False), ("0", False)],
)
def test_boolean_words(monkeypatch: pytest.MonkeyPatch, word: str, meaning: bool) -> None:
    monkeypatch.setenv("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", word)
    assert load_settings().storage.maintenance.readonly.enabled is meaning


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:5001", "127.0.0.1", 5001),
        ("[::1]:5001", "::1", 5001),
        ("localhost:5002", "localhost", 5002),
        ("localhost", "localhost", 5000),  # a host alone: the default port
        ("18610", "127.0.0.1", 18610),  # a port alone: the default, loopback, host
        (":5000", "0.0.0.0", 5000),  # Distribution's `http.addr: :5000`: every interface
    ],
)
def test_listen_forms(listen: str, host: str, port: int) -> None:
    assert (
        Settings().with_overrides({"http.addr": listen}).host,
        Settings().with_overrides({"http.addr": listen}).port,
    ) == (host, port)


def test_a_bare_port_in_yaml_is_a_loopback_address(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("http: {addr: 18610}\n")
    settings = load_settings(config)
    assert (settings.host, settings.port) == ("127.0.0.1", 18610)


@pytest.mark.parametrize("listen", [":80000", "127.0.0.1:-1", "127.0.0.1:http", "[::1", "", "a b:5000"])
def test_bad_listen_addresses_are_refused(listen: str) -> None:
    with pytest.raises(ValueError, match="listen"):
        Settings().with_overrides({"http.addr": listen})


def test_log_level_is_checked() -> None:
    with pytest.raises(ValueError, match=r"log\.level"):
        Settings().with_overrides({"log.level": "loud"})


@pytest.mark.parametrize("url", ["postgresql://u@db/registry", "postgres://u@db/registry"])
def test_a_plain_postgresql_url_gets_the_async_driver(url: str) -> None:
    assert Settings().with_overrides({"database.url": url}).index_url == "postgresql+asyncpg://u@db/registry"


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@db/registry", "mysql://u@db/registry", "nonsense"])
def test_other_database_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(ValueError, match=r"database.url.*postgresql\+asyncpg://"):
        Settings().with_overrides({"database.url": url})


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server: {workers: 2}\nhttp: [127.0.0.1:5000\n")
    with pytest.raises(ValueError, match=r"bad\.yaml, line [23]"):
        load_settings(config)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothere\.yaml"):
        load_settings(tmp_path / "nothere.yaml")


def test_unknown_environment_variables_are_named() -> None:
    warnings = unknown_environment(
        {
            "REGISTRY_LISTN": "127.0.0.1:5000",
            "REGISTRY_HTTP_ADDR": ":5000",
            "REGISTRY_REDIS_ADDR": "localhost:6379",
            "REGISTRY_LISTEN": "127.0.0.1:5000",  # alias: the old name
            "REGISTRY_CONFIG": "/etc/registry.yaml",
            "REGISTRY_CLIENT_ROOT": "/tmp",
            "PATH": "/bin",
        }
    )
    assert len(warnings) == 3, warnings
    typo, renamed, distribution = sorted(warnings, key=lambda line: ("LISTN" not in line, "REDIS" in line))
    assert "REGISTRY_LISTN" in typo and "did you mean" in typo
    assert "REGISTRY_LISTEN is now REGISTRY_HTTP_ADDR" in renamed
    assert (
        "REGISTRY_REDIS_ADDR" in distribution
        and "'redis'" in distribution
        and "not supported" in distribution
    )


def test_notifications_and_health_in_distributions_shape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "registry.yaml"
    config.write_text(
        "notifications:\n"
        "  endpoints:\n"
        "    - name: audit\n"
        "      url: https://hooks.example.com/registry\n"
        "      headers: {Authorization: [Bearer secret]}\n"
        "      timeout: 500ms\n"
        "      threshold: 5\n"
        "      backoff: 1m30s\n"
        "      ignoredmediatypes: [application/octet-stream]\n"
        "      ignore: {actions: [pull]}\n"
        "health:\n"
        "  storagedriver: {enabled: true, interval: 10s, threshold: 3}\n"
    )
    settings = load_settings(config)
    (endpoint,) = settings.notifications.endpoints
    assert (endpoint.timeout, endpoint.backoff, endpoint.threshold) == (0.5, 90.0, 5)
    assert endpoint.headers == {"Authorization": ("Bearer secret",)}
    assert endpoint.ignore.actions == ("pull",) and endpoint.ignoredmediatypes == (
        "application/octet-stream",
    )
    assert settings.health.storagedriver.enabled and settings.health.storagedriver.interval == 10.0
    # Worker processes read the same settings back from their environment.
    for name, value in settings_to_env(settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings
    monkeypatch.setenv("REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL", "250ms")
    assert load_settings().health.storagedriver.interval == 0.25


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("health.storagedriver.interval", "10 parsecs", "not a duration"),
        ("health.storagedriver.interval", "0s", "must be a number above 0"),
        ("notifications.endpoints", "[{name: a, url: ftp://x}]", "http:// or https://"),
        ("notifications.endpoints", "[{url: http://x}]", "key 'name' is required"),
        (
            "notifications.endpoints",
            "[{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]",
            "two endpoints",
        ),
        ("notifications.endpoints", "[{name: a, url: 'http://x', backof: 1s}]", "did you mean 'backoff'"),
    ],
)
def test_notification_and_health_mistakes_are_one_line(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings().with_overrides({key: value})
