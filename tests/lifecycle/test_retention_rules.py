"""Retention's choice as pure functions: which tags and untagged manifests a rule deletes, checked on
hand-made listings and, for its invariants, on listings hypothesis makes up."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.index import ManifestState, TagState
from registry.lifecycle.retention import choose_manifests, choose_tags, plan_repository
from registry.lifecycle.settings import RetentionRule, parse_duration, parse_size

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _tag(name: str, days_ago: float, digest: str = "sha256:a") -> TagState:
    return TagState(name, digest, NOW - days_ago * DAY)


def _never(_tag: str) -> bool:
    return False


def _names(removals) -> list[str]:
    return [removal.name for removal in removals]


def test_keep_newest_keeps_the_most_recently_pushed() -> None:
    tags = [_tag(f"b{i}", i) for i in range(5)]
    rule = RetentionRule("r", keep_newest=2)
    assert sorted(_names(choose_tags(rule, tags, NOW, _never))) == ["b2", "b3", "b4"]


def test_keep_tags_are_kept_and_not_counted_among_the_newest() -> None:
    tags = [_tag("v1.0", 10), _tag("v2.0", 9), _tag("dev-1", 3), _tag("dev-2", 2), _tag("dev-3", 1)]
    rule = RetentionRule("r", keep_newest=1, keep_tags=r"v[0-9.]+")
    assert sorted(_names(choose_tags(rule, tags, NOW, _never))) == ["dev-1", "dev-2"]


def test_older_than_alone_and_with_keep_newest() -> None:
    tags = [_tag("old", 40), _tag("older", 50), _tag("new", 1)]
    assert sorted(
        _names(choose_tags(RetentionRule("r", delete_tags_older_than="30d"), tags, NOW, _never))
    ) == [
        "old",
        "older",
    ]
    both = RetentionRule("r", keep_newest=2, delete_tags_older_than="30d")
    assert _names(choose_tags(both, tags, NOW, _never)) == ["older"]


def test_no_criterion_deletes_no_tag_and_immutable_tags_stay() -> None:
    tags = [_tag("a", 100), _tag("b", 100)]
    assert choose_tags(RetentionRule("r", keep_tags="x"), tags, NOW, _never) == []
    chosen = choose_tags(RetentionRule("r", delete_tags_older_than="1d"), tags, NOW, lambda t: t == "a")
    assert _names(chosen) == ["b"]


def test_untagged_manifests_go_after_their_age_parents_before_children() -> None:
    child, parent, young, tagged = "sha256:c", "sha256:p", "sha256:y", "sha256:t"
    manifests = [
        ManifestState(child, NOW - 10 * DAY),
        ManifestState(parent, NOW - 10 * DAY, children=(child,)),
        ManifestState(young, NOW - DAY / 2),
        ManifestState(tagged, NOW - 10 * DAY),
    ]
    rule = RetentionRule("r", delete_untagged_after="1d")
    assert _names(choose_manifests(rule, manifests, {tagged}, NOW)) == [parent, child]


def test_a_child_of_a_kept_index_and_a_referrer_of_a_kept_image_stay() -> None:
    image, signature, index, orphan_sig = "sha256:i", "sha256:s", "sha256:x", "sha256:o"
    manifests = [
        ManifestState(image, NOW - 10 * DAY),
        ManifestState(signature, NOW - 10 * DAY, subject=image),
        ManifestState(index, NOW - 10 * DAY, children=(image,)),
        ManifestState(orphan_sig, NOW - 10 * DAY, subject="sha256:gone"),
    ]
    rule = RetentionRule("r", delete_untagged_after="1d")
    assert _names(choose_manifests(rule, manifests, {index}, NOW)) == [orphan_sig]
    # Untag the index: it goes, then its child, then the child's signature.
    assert _names(choose_manifests(rule, manifests, set(), NOW)) == [orphan_sig, index, image, signature]


def test_a_plan_untags_then_deletes_the_manifests_it_untagged() -> None:
    tags = [_tag("old", 40, "sha256:old"), _tag("new", 1, "sha256:new")]
    manifests = [ManifestState("sha256:old", NOW - 40 * DAY), ManifestState("sha256:new", NOW - DAY)]
    rule = RetentionRule("r", keep_newest=1, delete_untagged_after="7d")
    plan = plan_repository("r", rule, tags, manifests, NOW, _never)
    assert _names(plan.tags) == ["old"]
    assert _names(plan.manifests) == ["sha256:old"]
    assert "not among the 1 newest" in plan.tags[0].reason


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("30m", 1800), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "x").total_seconds() == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("500MB", 500 * 10**6), ("10GiB", 10 * 2**30), ("1.5k", 1500)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, "x") == size


@pytest.mark.parametrize("text", ["", "ten", "-5", "5x", "1h 30m"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        parse_duration(text, "retention")


def test_zero_turns_a_duration_off() -> None:
    rule = RetentionRule("r", delete_tags_older_than="0", delete_untagged_after="0s")
    assert rule.tags_max_age is None and rule.untagged_max_age is None


# Properties: on any listing, what a rule keeps is kept, and what it leaves no later pass takes.

_names_strategy = st.lists(
    st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=0, max_size=12, unique=True
)


@st.composite
def _listings(draw):
    names = draw(_names_strategy)
    digests = [f"sha256:{i}" for i in range(draw(st.integers(0, 10)))]
    tags = (
        [TagState(n, draw(st.sampled_from(digests)), NOW - draw(st.integers(0, 60)) * DAY) for n in names]
        if digests
        else []
    )
    manifests = []
    for i, digest in enumerate(digests):
        earlier = digests[:i]
        children = tuple(draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True))) if earlier else ()
        subject = draw(st.none() | st.sampled_from(digests))
        manifests.append(
            ManifestState(
                digest, NOW - draw(st.integers(0, 60)) * DAY, subject if subject != digest else None, children
            )
        )
    rule = RetentionRule(
        "r",
        keep_newest=draw(st.integers(0, 4)),
        keep_tags=draw(st.sampled_from(["", "a.*", "[a-m].*"])),
        delete_tags_older_than=draw(st.sampled_from(["", "10d", "30d"])),
        delete_untagged_after=draw(st.sampled_from(["", "1d", "20d"])),
    )
    fixed = draw(st.sampled_from(["", "b.*", "c.*"]))
    return tags, manifests, rule, fixed


@settings(max_examples=300, deadline=None)
@given(_listings())
def test_what_a_rule_keeps_stays(listing) -> None:
    tags, manifests, rule, fixed_pattern = listing

    def fixed(tag: str) -> bool:
        return bool(fixed_pattern) and re.fullmatch(fixed_pattern, tag) is not None

    plan = plan_repository("r", rule, tags, manifests, NOW, fixed)
    deleted_tags = set(_names(plan.tags))
    candidates = sorted(
        (t for t in tags if not fixed(t.name) and not rule.keeps(t.name)),
        key=lambda t: (t.updated_at, t.name),
        reverse=True,
    )
    assert not deleted_tags & {t.name for t in candidates[: rule.keep_newest]}
    for tag in tags:
        if tag.name in deleted_tags:
            assert not fixed(tag.name) and not rule.keeps(tag.name)
            if rule.tags_max_age is not None:
                assert NOW - tag.updated_at > rule.tags_max_age
    if rule.keep_newest == 0 and rule.tags_max_age is None:
        assert not deleted_tags

    gone = [removal.digest for removal in plan.manifests]
    assert len(gone) == len(set(gone))
    tagged = {t.digest for t in tags if t.name not in deleted_tags}
    by_digest = {m.digest: m for m in manifests}
    for position, digest in enumerate(gone):
        manifest = by_digest[digest]
        assert digest not in tagged
        assert NOW - manifest.created_at > rule.untagged_max_age
        # Deleted in order: when it goes, no remaining manifest lists it, and its subject is gone.
        remaining = set(by_digest) - set(gone[: position + 1])
        assert not any(digest in by_digest[other].children for other in remaining)
        assert manifest.subject not in remaining or manifest.subject == digest

    # Nothing left behind that the rule would take in a second pass (the plan is complete).
    left = [m for m in manifests if m.digest not in set(gone)]
    assert choose_manifests(rule, left, tagged, NOW) == []
