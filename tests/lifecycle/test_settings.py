"""The lifecycle sections of the settings: read from YAML and the environment, handed to workers
unchanged, and a mistake named in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.config import load_settings, settings_to_env

YAML = """\
retention:
  enabled: true
  rules:
    - {repositories: "team/*", keep_newest: 10, keep_tags: 'v[0-9]+', delete_untagged_after: 7d}
quotas:
  rules:
    - {repositories: "team/*", limit: 10GiB}
    - {repositories: "ci/*", limit: 1000000}
immutable_tags:
  rules:
    - {repositories: "*", tags: 'v[0-9]+\\.[0-9]+\\.[0-9]+'}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_sections_from_yaml_and_back_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(YAML)
    settings = load_settings(config)
    assert settings.retention.enabled
    [rule] = settings.retention.rules
    assert (rule.keep_newest, rule.untagged_max_age.days) == (10, 7)
    assert settings.retention.rule_for("team/web") is rule and settings.retention.rule_for("other") is None
    assert [q.limit_bytes for q in settings.quotas.rules_for("team/web")] == [10 * 2**30]
    assert settings.immutable_tags.rule_for("any/repo", "v1.2.3") is not None
    assert settings.immutable_tags.rule_for("any/repo", "v1.2") is None
    for name, value in settings_to_env(settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "REGISTRY_QUOTAS_RULES",
            '[{repositories: "a/*", limit: lots}]',
            "setting 'quotas.rules[a/*]': 'lots' is not a size",
        ),
        ("REGISTRY_QUOTAS_RULES", '[{repositories: "A/*", limit: 1}]', "needs a lower-case glob"),
        (
            "REGISTRY_RETENTION_RULES",
            '[{repositories: "a", delete_untagged_after: soon}]',
            "'soon' is not a duration",
        ),
        (
            "REGISTRY_RETENTION_RULES",
            '[{repositories: "a", keep_newest: -1}]',
            "keep_newest must be 0 or more",
        ),
        ("REGISTRY_RETENTION_RULES", '[{repositories: "a", keep: 1}]', "unknown key 'keep'"),
        ("REGISTRY_IMMUTABLE_TAGS_RULES", '[{repositories: "a", tags: "[" }]', "is not a regular expression"),
        ("REGISTRY_IMMUTABLE_TAGS_RULES", '[{tags: "v.*"}]', "key 'repositories' is required"),
    ],
)
def test_mistakes_are_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("*", r"\*")):
        load_settings()
