"""A Distribution `config.yml` (Debian's, with only its paths and port made the test's own) served as
Distribution serves it: Basic authentication from its htpasswd file, blobs under its rootdirectory,
pushes and pulls by skopeo; and `storage.delete.enabled: false` refusing deletes as Distribution does."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.auth.test_basic_auth import htpasswd_line
from tests.client.conftest import skopeo_push
from tests.support.images import build_busybox_layout, layout_descriptor
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool
from tests.unit.test_config_distribution import DEBIAN_CONFIG

RULES = """\
rules:
  - who: [authenticated]
    repositories: ["*"]
    actions: ["*"]
"""


def _distribution_config(root: Path, port: int, delete: bool) -> Path:
    (root / "htpasswd").write_text(htpasswd_line("dora", "dora-password"))
    text = (
        DEBIAN_CONFIG.replace("/var/lib/docker-registry", str(root / "blobs"))
        .replace("path: /etc/docker/registry", f"path: {root / 'htpasswd'}")
        .replace("addr: :5000", f"addr: 127.0.0.1:{port}")
        .replace("enabled: true\nhttp:", f"enabled: {str(delete).lower()}\nhttp:")
    )
    config = root / "config.yml"
    config.write_text(text)
    return config


def _serve(root: Path, delete: bool) -> RegistryProcess:
    process = RegistryProcess(root / "data")
    config = _distribution_config(root, process.port, delete)
    process.extra_env["REGISTRY_CONFIG"] = str(config)
    # Beside the file: dora may delete (the default rules let users pull and push only).
    (root / "rules.yaml").write_text(RULES)
    process.extra_env["REGISTRY_RULES_PATH"] = str(root / "rules.yaml")
    return process.start()


def _manifest_digest(reference: str, creds: str) -> str:
    skopeo = require_tool("skopeo")["skopeo"]
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"docker://{reference}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.mark.clients
def test_debian_config_serves_push_and_pull(tmp_path: Path) -> None:
    server = _serve(tmp_path, delete=True)
    try:
        layout = build_busybox_layout(tmp_path / "layout", "1", {"/etc/motd": "from distribution's config\n"})
        reference = f"{server.host}/team/busybox:1"
        skopeo_push(layout, "1", reference, "--dest-creds", "dora:dora-password")
        assert _manifest_digest(reference, "dora:dora-password") == layout_descriptor(layout, "1")["digest"]
        assert httpx.get(server.url + "/v2/").status_code == 401  # htpasswd given: Basic auth is on
        assert (tmp_path / "blobs").is_dir()  # storage.filesystem.rootdirectory holds the blobs
        log = server.log.read_text()
        assert "'storage.cache' (Distribution's) is not supported" in log
    finally:
        server.stop()


@pytest.mark.clients
def test_delete_disabled_is_refused_as_distribution_does(tmp_path: Path) -> None:
    server = _serve(tmp_path, delete=False)
    try:
        layout = build_busybox_layout(tmp_path / "layout", "1")
        skopeo_push(layout, "1", f"{server.host}/team/busybox:1", "--dest-creds", "dora:dora-password")
        digest = layout_descriptor(layout, "1")["digest"]
        with server.client() as client:
            answer = client.delete(f"/v2/team/busybox/manifests/{digest}", auth=("dora", "dora-password"))
            assert answer.status_code == 405
            assert answer.json()["errors"][0]["code"] == "UNSUPPORTED"
            still = client.head(f"/v2/team/busybox/manifests/{digest}", auth=("dora", "dora-password"))
            assert still.status_code == 200
    finally:
        server.stop()
