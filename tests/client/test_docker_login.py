"""What `docker login` left behind is enough for `registry pull`: a real dockerd logs in to a token-auth
`registry serve` over TLS, which hands it a refresh token that Docker keeps as `identitytoken`; the
client must trade that token for access tokens as Docker does, and never spend the user's login attempts
on an empty password."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.conftest import add_users, pki, tls_env  # noqa: F401  (pki: the session's CA)
from tests.client.conftest import CLI
from tests.e2e.test_docker import Docker, docker  # noqa: F401  (the session's dockerd)
from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import ImageTool, require_tool

pytestmark = pytest.mark.clients

USER, PASSWORD = "alice", "alice-password"
FAILURES_ALLOWED = 3  # the server's login_failures_per_user, low so that a lockout shows quickly
RULES = 'rules:\n  - who: [authenticated]\n    repositories: ["*"]\n    actions: [pull, push]\n'


@pytest.fixture
def token_registry(pki: Path, tmp_path: Path) -> Iterator[RegistryProcess]:  # noqa: F811
    add_users(tmp_path / "data", "", {USER: PASSWORD}, {})
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {
        "REGISTRY_AUTH_MODE": "token",
        "REGISTRY_RULES_PATH": str(tmp_path / "rules.yaml"),
        "REGISTRY_LIMITS_LOGIN_FAILURES_PER_USER": str(FAILURES_ALLOWED),
        **tls_env(pki),
    }
    process = RegistryProcess(tmp_path / "data", "", env).start()
    yield process
    process.stop()


@pytest.fixture
def docker_trusts(pki: Path, token_registry: RegistryProcess) -> Iterator[str]:  # noqa: F811
    """The registry as `localhost:PORT` (TLS, as Docker wants for any name but 127.0.0.0/8), its CA in
    dockerd's certs.d: dockerd reads only that folder, so this one test folder is made there and removed."""
    host = f"localhost:{token_registry.port}"
    folder = Path("/etc/docker/certs.d") / host
    try:
        folder.mkdir(parents=True)
    except PermissionError:
        pytest.skip("writing /etc/docker/certs.d needs root")
    shutil.copy(pki / "ca.crt", folder / "ca.crt")
    yield host
    shutil.rmtree(folder, ignore_errors=True)


def test_pull_with_what_docker_login_stored(
    cli: CLI,
    docker: Docker,  # noqa: F811
    docker_trusts: str,
    pki: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = docker_trusts
    image = f"{host}/team/busybox:1"
    layout = build_busybox_layout(tmp_path / "layout", "1", {"/etc/motd": "docker login\n"})
    skopeo = require_tool("skopeo")["skopeo"]
    copy = [skopeo, "--insecure-policy", "copy", "--dest-creds", f"{USER}:{PASSWORD}"]
    pushed = subprocess.run(
        [*copy, "--dest-cert-dir", str(pki / "certs"), f"oci:{layout}:1", f"docker://{image}"],
        capture_output=True,
        text=True,
    )
    assert pushed.returncode == 0, pushed.stderr

    docker_config = tmp_path / "docker-config"
    engine = {"DOCKER_HOST": docker.env["DOCKER_HOST"], "DOCKER_CONFIG": str(docker_config)}
    own_docker = ImageTool(docker.binary, tmp_path, engine)
    login = own_docker("login", "-u", USER, "-p", PASSWORD, host)
    assert "Login Succeeded" in login.stdout
    stored = json.loads((docker_config / "config.json").read_text())["auths"][host]
    assert stored.get("identitytoken"), stored  # Docker keeps the refresh token, no password

    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    for attempt in range(FAILURES_ALLOWED + 1):
        pulled = cli("pull", "--ca-cert", str(pki / "ca.crt"), image)
        assert pulled.code == 0, (attempt, pulled.err)
    # No failed login was counted against the user: Docker can still log in.
    again = own_docker("login", "-u", USER, "-p", PASSWORD, host, check=False)
    assert again.returncode == 0, again.stderr
