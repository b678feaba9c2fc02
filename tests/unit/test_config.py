"""Settings precedence: YAML file < REGISTRY_* environment < flags, with types checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import Settings, load_settings, settings_to_env


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.listen == "127.0.0.1:5000"
    assert settings.data_dir == tmp_path / "registry"
    assert settings.index_url == f"sqlite+aiosqlite:///{tmp_path / 'registry' / 'index.db'}"
    assert settings.blob_root == tmp_path / "registry" / "blobs"


def test_file_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "registry.yaml"
    config.write_text("listen: 0.0.0.0:6000\nworkers: 3\ndata-dir: /srv/registry\nupload_expiry: 60\n")
    from_file = load_settings(config)
    assert (from_file.listen, from_file.workers, from_file.data_dir) == (
        "0.0.0.0:6000",
        3,
        Path("/srv/registry"),
    )

    monkeypatch.setenv("REGISTRY_WORKERS", "5")
    monkeypatch.setenv("REGISTRY_UPLOAD_EXPIRY", "90")
    from_env = load_settings(config)
    assert (from_env.workers, from_env.upload_expiry, from_env.listen) == (5, 90, "0.0.0.0:6000")

    from_flags = load_settings(config, {"workers": 7, "listen": None})
    assert from_flags.workers == 7
    assert from_flags.listen == "0.0.0.0:6000"  # a flag left unset does not override


def test_config_file_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("log_level: debug\n")
    monkeypatch.setenv("REGISTRY_CONFIG", str(config))
    assert load_settings().log_level == "debug"


@pytest.mark.parametrize(
    ("content", "message"),
    [("nonsense_key: 1\n", "unknown setting"), ("workers: many\n", "cannot read"), ("- a list\n", "mapping")],
)
def test_bad_config_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_settings(config)


def test_environment_round_trip_gives_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers rebuild their settings from the environment the parent exports."""
    original = Settings(listen="127.0.0.1:7000", workers=2, database_url="postgresql+asyncpg://x/y")
    for name, value in settings_to_env(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_listen_address_parts() -> None:
    assert (Settings(listen="[::1]:5001").host, Settings(listen="[::1]:5001").port) == ("::1", 5001)
    assert Settings(listen="0.0.0.0:80").port == 80
