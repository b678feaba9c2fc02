"""Real clients against a registry with HTTPS (the CA from `registry cert init`) and token auth: skopeo
with --creds, podman login, docker login; and what each must be refused."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.conftest import add_users, cli_output, data_args, tls_env
from tests.e2e.test_docker import Docker
from tests.e2e.test_podman import Podman
from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

RULES = """\
rules:
  - who: [authenticated]
    repositories: ["*"]
    actions: [pull]
  - who: [group:writers]
    repositories: ["*"]
    actions: [pull, push]
  - who: [anonymous]
    repositories: ["public/*"]
    actions: [pull]
"""
USERS = {"alice": "alice-password", "reader": "reader-password"}


class Registry:
    def __init__(self, process: RegistryProcess, certs: Path, ci_secret: str) -> None:
        self.process = process
        self.host = process.host
        self.certs = certs  # a folder holding only ca.crt: what --cert-dir options and certs.d want
        self.ci_secret = ci_secret


@pytest.fixture(scope="module")
def registry(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("clients")
    add_users(root / "data", "", USERS, {"alice": ["writers"]})
    code, secret = cli_output(
        "user", "add", "ci", "--service-account", "--group", "writers", *data_args(root / "data", "")
    )
    assert code == 0
    (root / "rules.yaml").write_text(RULES)
    process = RegistryProcess(
        root / "data",
        "",
        {"REGISTRY_AUTH_MODE": "token", "REGISTRY_RULES_PATH": str(root / "rules.yaml"), **tls_env(pki)},
    ).start()
    yield Registry(process, pki / "certs", secret.strip())
    process.stop()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(
        tmp_path_factory.mktemp("image") / "layout", tag="1", extra_files={"/etc/motd": "auth\n"}
    )


@pytest.fixture
def skopeo(tmp_path: Path):
    binary = require_tool("skopeo")["skopeo"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path)}
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [binary, "--insecure-policy", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def refused(result: subprocess.CompletedProcess[str], *reasons: str) -> None:
    assert result.returncode != 0, f"{result.args} should have failed\n{result.stdout}"
    assert any(re.search(reason, result.stderr, re.IGNORECASE) for reason in reasons), result.stderr


def _push_as_alice(skopeo, certs: str, layout: Path, reference: str) -> None:
    """Put the test image in place over TLS with alice's credentials, for a client to pull."""
    ok(
        skopeo(
            "copy",
            "--dest-creds",
            "alice:alice-password",
            "--dest-cert-dir",
            certs,
            f"oci:{layout}:1",
            f"docker://{reference}",
        )
    )


def test_skopeo_with_credentials(registry: Registry, layout: Path, skopeo) -> None:
    target = f"docker://{registry.host}/alice/busybox:1"
    certs = str(registry.certs)
    _push_as_alice(skopeo, certs, layout, target.removeprefix("docker://"))
    listing = ok(
        skopeo(
            "list-tags",
            "--creds",
            "reader:reader-password",
            "--cert-dir",
            certs,
            f"docker://{registry.host}/alice/busybox",
        )
    )
    assert '"1"' in listing.stdout
    # A service account's generated secret works like a password.
    ok(
        skopeo(
            "copy",
            "--dest-creds",
            f"ci:{registry.ci_secret}",
            "--dest-cert-dir",
            certs,
            f"oci:{layout}:1",
            f"docker://{registry.host}/ci/busybox:1",
        )
    )

    refused(
        skopeo(
            "copy",
            "--dest-creds",
            "reader:reader-password",
            "--dest-cert-dir",
            certs,
            f"oci:{layout}:1",
            f"docker://{registry.host}/reader/busybox:1",
        ),
        "denied",
    )
    refused(
        skopeo(
            "copy",
            "--dest-creds",
            "alice:wrong-password",
            "--dest-cert-dir",
            certs,
            f"oci:{layout}:1",
            target,
        ),
        "invalid username/password",
        "unauthorized",
    )
    refused(skopeo("inspect", "--cert-dir", certs, target), "unauthorized", "authentication required")
    refused(skopeo("inspect", "--creds", "alice:alice-password", target), "x509", "certificate")


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    tools = require_tool("podman", "runc")
    root = Path(tempfile.mkdtemp(prefix="auth-podman-"))
    instance = Podman(tools["podman"], root)
    yield instance
    instance("system", "reset", "--force", check=False)
    shutil.rmtree(root, ignore_errors=True)


def test_podman_login_push_pull_over_tls(registry: Registry, layout: Path, skopeo, podman: Podman) -> None:
    certs = str(registry.certs)
    source = f"{registry.host}/alice/podman-src:1"
    _push_as_alice(skopeo, certs, layout, source)

    denied = podman("pull", "--cert-dir", certs, source, check=False)
    refused(denied, "unauthorized", "authentication required")
    untrusted = podman(
        "login", "--username", "alice", "--password", "alice-password", registry.host, check=False
    )
    refused(untrusted, "x509", "certificate")
    wrong = podman(
        "login", "--cert-dir", certs, "-u", "alice", "--password", "nope", registry.host, check=False
    )
    refused(wrong, "invalid username/password", "unauthorized")

    podman("login", "--cert-dir", certs, "-u", "alice", "--password", "alice-password", registry.host)
    podman("pull", "--cert-dir", certs, source)
    pushed = f"{registry.host}/team/podman:2"
    podman("tag", source, pushed)
    podman("push", "--cert-dir", certs, pushed)
    podman("rmi", "--force", pushed, source)
    podman("pull", "--cert-dir", certs, pushed)
    run = podman("run", "--rm", pushed, "cat", "/etc/motd")
    assert run.stdout == "auth\n"
    podman("logout", registry.host)

    podman("login", "--cert-dir", certs, "-u", "reader", "--password", "reader-password", registry.host)
    podman("pull", "--cert-dir", certs, pushed)
    podman("tag", pushed, f"{registry.host}/reader/mine:1")
    refused(podman("push", "--cert-dir", certs, f"{registry.host}/reader/mine:1", check=False), "denied")
    podman("logout", registry.host)


@pytest.fixture
def docker_trusts(registry: Registry) -> Iterator[None]:
    """The README's way: the CA in /etc/docker/certs.d/HOST:PORT/ca.crt (read by dockerd per connection)."""
    folder = Path("/etc/docker/certs.d") / registry.host
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pytest.skip("writing /etc/docker/certs.d needs root")
    shutil.copy(registry.certs / "ca.crt", folder / "ca.crt")
    yield
    shutil.rmtree(folder, ignore_errors=True)


def test_docker_login_push_pull(
    registry: Registry, layout: Path, skopeo, docker: Docker, docker_trusts: None
) -> None:
    certs = str(registry.certs)
    source = f"{registry.host}/alice/docker-src:1"
    _push_as_alice(skopeo, certs, layout, source)

    wrong = docker("login", "-u", "alice", "--password", "wrong-password", registry.host, check=False)
    refused(wrong, "unauthorized", "invalid")
    refused(
        docker("pull", source, check=False),
        "unauthorized",
        "pull access denied",  # docker's words for a 401 without credentials
        "authentication required",
    )

    login = docker("login", "-u", "alice", "--password", "alice-password", registry.host)
    assert "Login Succeeded" in login.stdout
    docker("pull", source)
    copies = [f"{registry.host}/team/docker:1", f"{registry.host}/team/docker-copy:1"]
    for copy in copies:
        docker("tag", source, copy)
    docker.push(copies[0])
    _, output = docker.push(copies[1])
    assert "Mounted from" in output or "Layer already exists" in output, output  # mounts work with auth
    docker("rmi", "--force", source, *copies)
    docker("pull", copies[0])
    docker("logout", registry.host)

    docker("login", "-u", "reader", "--password", "reader-password", registry.host)
    docker("tag", copies[0], f"{registry.host}/reader/mine:1")
    refused(docker("push", f"{registry.host}/reader/mine:1", check=False), "denied")
    docker("logout", registry.host)
    docker("rmi", "--force", copies[0], f"{registry.host}/reader/mine:1", check=False)
