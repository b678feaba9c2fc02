"""Access rules and scope parsing, in process: every kind of `who`, patterns, namespaces, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from registry.auth.access import Rules, RulesFile
from registry.auth.identity import ANONYMOUS, Identity, validate_user_name
from registry.auth.scopes import ResourceScope, access_from_claim, parse_scope, parse_scopes
from tests.auth.conftest import RULES

ALICE = Identity("alice", frozenset({"dev"}))
BOB = Identity("bob")
CAROL = Identity("carol")
ADMIN = Identity("admin")
ALL = {"pull", "push", "delete"}


@pytest.fixture
def rules() -> Rules:
    return Rules.parse(yaml.safe_load(RULES))


def test_groups_users_namespaces_anonymous_and_admin(rules: Rules) -> None:
    assert rules.actions(ALICE, "dev/app") == {"pull", "push"}
    assert rules.actions(BOB, "dev/app") == {"pull"}
    assert rules.actions(CAROL, "dev/app") == set()
    assert rules.actions(ALICE, "alice/x") == ALL
    assert rules.actions(ALICE, "alice/deep/er") == ALL
    assert rules.actions(ALICE, "bob/x") == set()
    assert rules.actions(ALICE, "alice") == set()  # the namespace, not a repository named like the user
    assert rules.actions(ALICE, "alicex/y") == set()
    assert rules.actions(ANONYMOUS, "public/tool") == {"pull"}
    assert rules.actions(ANONYMOUS, "dev/app") == set()
    assert rules.actions(ANONYMOUS, "/x") == set()  # anonymous callers own no namespace
    assert rules.actions(ADMIN, "anything/at/all") == ALL


def test_catalog_is_offered_to_whoever_may_pull_something(rules: Rules) -> None:
    assert rules.may_list_catalog(CAROL)  # her namespace
    assert rules.may_list_catalog(ANONYMOUS)  # public/*
    no_anonymous = Rules.parse(
        {"rules": [{"who": ["authenticated"], "repositories": ["*"], "actions": ["push"]}]}
    )
    assert not no_anonymous.may_list_catalog(ANONYMOUS)
    assert not no_anonymous.may_list_catalog(ALICE)


def test_default_rules_let_users_pull_and_push_and_anonymous_nothing() -> None:
    default = Rules.default()
    assert default.actions(CAROL, "any/repo") == {"pull", "push"}
    assert default.actions(ANONYMOUS, "any/repo") == set()
    assert not default.may_list_catalog(ANONYMOUS)


def test_patterns_are_globs_and_names_are_literal() -> None:
    rules = Rules.parse(
        {
            "rules": [
                {
                    "who": ["authenticated"],
                    "repositories": ["team-?/app", "ns.${user}/*"],
                    "actions": ["pull"],
                },
            ]
        }
    )
    assert rules.actions(CAROL, "team-a/app") == {"pull"}
    assert rules.actions(CAROL, "team-ab/app") == set()
    assert rules.actions(CAROL, "ns.carol/x") == {"pull"}
    assert rules.actions(CAROL, "nsxcarol/x") == set()  # the dot is a dot
    # A user name is matched as text: a name with pattern characters gets no wildcard powers.
    assert rules.actions(Identity("*"), "ns.anyone/x") == set()
    assert rules.actions(Identity("*"), "ns.*/x") == {"pull"}


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"rules": "not a list"},
        {"rules": [], "extra": 1},
        {"rules": [{"who": ["user:a"], "repositories": ["*"]}]},
        {"rules": [{"who": ["someone"], "repositories": ["*"], "actions": ["pull"]}]},
        {"rules": [{"who": ["user:"], "repositories": ["*"], "actions": ["pull"]}]},
        {"rules": [{"who": ["user:a"], "repositories": ["*"], "actions": ["read"]}]},
        {"rules": [{"who": ["user:a"], "repositories": [], "actions": ["pull"]}]},
        {"rules": [{"who": "user:a", "repositories": ["*"], "actions": ["pull"]}]},
    ],
)
def test_malformed_rules_are_refused(document: object) -> None:
    with pytest.raises(ValueError):
        Rules.parse(document)


def test_a_rules_file_that_breaks_keeps_the_last_good_rules(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules_file = RulesFile(str(path))
    monkeypatch.setattr("registry.auth.access.RELOAD_INTERVAL", 0.0)
    assert rules_file.current().actions(BOB, "dev/x") == {"pull"}
    path.write_text("rules: [oops")
    assert rules_file.current().actions(BOB, "dev/x") == {"pull"}
    path.write_text('rules:\n  - {who: [user:bob], repositories: ["dev/*"], actions: ["*"]}\n')
    assert rules_file.current().actions(BOB, "dev/x") == ALL


def test_a_missing_or_broken_rules_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RulesFile(str(tmp_path / "missing.yaml"))
    (tmp_path / "broken.yaml").write_text("rules:\n  - who: [user:a]\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: rule 1"):
        RulesFile(str(tmp_path / "broken.yaml"))


def test_user_names() -> None:
    for good in ("alice", "ci-bot", "a", "a.b_c-9"):
        assert validate_user_name(good) == good
    for bad in ("", "Alice", "-a", "a-", "a/b", "a:b", "*", "x" * 65, "a b"):
        with pytest.raises(ValueError):
            validate_user_name(bad)


def test_scopes() -> None:
    assert parse_scope("repository:team/app:pull,push") == ResourceScope(
        "repository", "team/app", frozenset({"pull", "push"})
    )
    # A host:port prefix keeps its colon; a resource class is dropped.
    assert parse_scope("repository:host:5000/app:pull").name == "host:5000/app"
    assert parse_scope("repository(plugin):app:pull").type == "repository"
    assert parse_scope("registry:catalog:*").actions == {"*"}
    assert parse_scope("repository:app:").actions == frozenset()
    for bad in ("repository", "repository:app", "Repo:app:pull", "repository::pull", "repository:app:PULL"):
        with pytest.raises(ValueError):
            parse_scope(bad)
    merged = parse_scopes(["repository:a:pull repository:b:pull", "repository:a:push", ""])
    assert merged == [
        ResourceScope("repository", "a", frozenset({"pull", "push"})),
        ResourceScope("repository", "b", frozenset({"pull"})),
    ]


def test_access_claim() -> None:
    claim = [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "repository(plugin)", "name": "a", "actions": ["push"]},
    ]
    assert access_from_claim(claim) == {("repository", "a"): {"pull", "push"}}
    assert access_from_claim(None) == {}
    for bad in (
        "pull",
        [1],
        [{"type": "repository", "name": "a"}],
        [{"type": "r", "name": "a", "actions": [1]}],
    ):
        with pytest.raises(ValueError):
            access_from_claim(bad)
