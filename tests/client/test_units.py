"""Pure functions of the client: reference grammar and Docker's defaults, transport rules, platforms,
challenges, sizes and ages, and the terminal progress lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from registry.client import reference as references
from registry.client.auth import parse_challenge
from registry.client.platforms import Platform, choose
from registry.client.progress import Progress
from registry.client.reference import InvalidReference, Reference
from registry.client.transport import candidates, is_loopback
from registry.client.units import age, human_size

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", Reference("docker.io", "library/busybox", "latest")),
        ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36")),
        ("library/busybox", Reference("docker.io", "library/busybox", "latest")),
        ("team/app:v2", Reference("docker.io", "team/app", "v2")),
        ("index.docker.io/busybox", Reference("docker.io", "library/busybox", "latest")),
        ("docker.io/team/app", Reference("docker.io", "team/app", "latest")),
        ("127.0.0.1:5000/x/busybox:1", Reference("127.0.0.1:5000", "x/busybox", "1")),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("localhost:5000/a/b/c", Reference("localhost:5000", "a/b/c", "latest")),
        ("Registry.Example.com/app", Reference("Registry.Example.com", "app", "latest")),
        ("[::1]:5000/app:tag", Reference("[::1]:5000", "app", "tag")),
        (f"busybox@{DIGEST}", Reference("docker.io", "library/busybox", None, DIGEST)),
        (f"example.com:443/app:1@{DIGEST}", Reference("example.com:443", "app", "1", DIGEST)),
        ("a.b/c__d-e.f/g:TAG_1.x", Reference("a.b", "c__d-e.f/g", "TAG_1.x")),
    ],
)
def test_reference_parsing_and_normalization(text: str, expected: Reference) -> None:
    assert references.parse(text) == expected


def test_reference_strings() -> None:
    assert references.normalize("busybox") == "docker.io/library/busybox:latest"
    assert references.familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert references.familiar("docker.io/team/app:1") == "team/app:1"
    assert references.familiar("127.0.0.1:5000/x/y:1") == "127.0.0.1:5000/x/y:1"
    assert str(references.parse(f"x.io/a@{DIGEST}")) == f"x.io/a@{DIGEST}"
    assert references.parse("busybox", default_tag=False).tag is None
    hub = references.parse("busybox")
    assert hub.api_host == "registry-1.docker.io" and hub.manifest_reference == "latest"
    assert references.parse(f"a.io/b:1@{DIGEST}").manifest_reference == DIGEST
    assert references.parse("127.0.0.1:5000/x").api_host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",  # the first component has no dot or colon, so it is a Hub path: lower case only
        "docker.io/Team/app",
        "busybox:",
        "busybox:-tag",
        "a//b",
        "/busybox",
        "busybox@sha256:abc",
        "busybox@md5:" + "a" * 32,
        "a" * 64,
        "host:port/app",
        "x.io/" + "a" * 260,
    ],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        references.parse(text)


def test_loopback_registries_are_plain_http_and_others_https_only() -> None:
    for domain in ("127.0.0.1:5000", "127.3.2.1", "[::1]:5000", "[::1]"):
        assert is_loopback(domain), domain
        assert [e.base_url for e in candidates(domain)] == [f"http://{domain}"]
    for domain in ("localhost:5000", "example.com", "10.0.0.1:5000", "[fe80::1]:5000"):
        assert not is_loopback(domain), domain
        (only,) = candidates(domain)
        assert only.base_url == f"https://{domain}" and only.verify is not False
    insecure = candidates("example.com:5000", insecure=True)
    assert [(e.base_url, e.verify) for e in insecure] == [
        ("https://example.com:5000", False),
        ("http://example.com:5000", False),
    ]


def test_platform_choice_from_an_index() -> None:
    index = {
        "manifests": [
            {"digest": "amd", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": "arm7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"digest": "att", "platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    assert choose(index, Platform.parse("linux/amd64"))["digest"] == "amd"
    assert choose(index, Platform.parse("linux/x86_64"))["digest"] == "amd"
    assert choose(index, Platform.parse("linux/arm64"))["digest"] == "arm"
    assert choose(index, Platform.parse("linux/arm64/v8"))["digest"] == "arm"
    assert choose(index, Platform.parse("linux/arm/v7"))["digest"] == "arm7"
    with pytest.raises(ValueError, match=r"no matching manifest for linux/arm/v6 .*linux/arm/v7"):
        choose(index, Platform.parse("linux/arm/v6"))
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse("linux")
    assert str(Platform.host()).startswith("linux/")


def test_www_authenticate_challenges() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push repository:c:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push repository:c:pull",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_sizes_and_ages_read_like_docker() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_032_000, 4_261_000, 12_345_678_901)] == [
        "0B", "999B", "1kB", "1.03MB", "4.26MB", "12.3GB",
    ]  # fmt: skip
    now = datetime(2024, 6, 1, tzinfo=UTC)
    assert age("2024-06-01T00:00:00Z", now) == "Less than a second ago"
    assert age("2024-05-31T23:58:59.123456789Z", now) == "About a minute ago"
    assert age("2024-05-31T23:59:01Z", now) == "59 seconds ago"
    assert age("2024-05-31T21:00:00Z", now) == "3 hours ago"
    assert age("2024-05-11T00:00:00Z", now) == "3 weeks ago"
    assert age("2000-01-01T00:00:00Z", now) == "24 years ago"
    assert age(None, now) == age("not a time", now) == "N/A"


def test_progress_redraws_lines_in_place_on_a_terminal_and_logs_final_states_otherwise() -> None:
    terminal = io.StringIO()
    progress = Progress(terminal, interactive=True)
    progress.update("aaa", "Waiting")
    progress.update("bbb", "Waiting")
    progress.update("aaa", "Pull complete", final=True)
    progress.message("Digest: x")
    assert terminal.getvalue() == (
        "aaa: Waiting\nbbb: Waiting\n\x1b[2A\r\x1b[2Kaaa: Pull complete\x1b[2B\rDigest: x\n"
    )
    log = io.StringIO()
    progress = Progress(log, interactive=False)
    progress.update("aaa", "Downloading")
    progress.update("aaa", "Pull complete", final=True)
    assert log.getvalue() == "aaa: Pull complete\n"
