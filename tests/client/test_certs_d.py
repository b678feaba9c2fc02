"""certs.d: the CA and client certificate installed for Docker or Podman (`certs.d/HOST:PORT/`) serve the
client too, against a real `registry serve` that requires client certificates; without them, the error
says where trust is configured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.auth.conftest import pki  # noqa: F401  (the session's CA)
from tests.auth.test_tls import MutualTLSProcess, mtls  # noqa: F401  (a registry requiring client certs)
from tests.client.conftest import CLI
from tests.support.images import build_busybox_layout
from tests.support.tools import require_tool


@pytest.fixture(scope="module")
def image(mtls: MutualTLSProcess, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    """An image in the mTLS registry, pushed by skopeo with a --dest-cert-dir laid out as certs.d is."""
    root = tmp_path_factory.mktemp("certs-d-image")
    cert_dir = root / "certs"
    cert_dir.mkdir()
    for path in (mtls.ca, *mtls.client_cert):
        shutil.copy(path, cert_dir / path.name)
    layout = build_busybox_layout(root / "layout", "1", {"/etc/motd": "mtls\n"})
    reference = f"localhost:{mtls.port}/certs/busybox:1"
    skopeo = require_tool("skopeo")["skopeo"]
    command = [skopeo, "--insecure-policy", "copy", "--dest-cert-dir", str(cert_dir)]
    pushed = subprocess.run([*command, f"oci:{layout}:1", f"docker://{reference}"], capture_output=True)
    assert pushed.returncode == 0, pushed.stderr.decode()
    return reference


def test_certs_d_of_docker_and_podman(
    cli: CLI,
    image: str,
    mtls: MutualTLSProcess,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = image.split("/")[0]
    personal, containers, docker = (tmp_path / name / "certs.d" for name in ("home", "containers", "docker"))
    monkeypatch.setenv("REGISTRY_CERTS_DIRS", f"{personal}:{containers}:{docker}")

    untrusted = cli("pull", image)
    assert untrusted.code == 1 and "Traceback" not in untrusted.err
    assert len(untrusted.err.strip().splitlines()) == 1, untrusted.err
    assert "--ca-cert" in untrusted.err and f"{docker / host}/" in untrusted.err, untrusted.err

    # Docker's layout: the CA is trusted now, but this registry wants a client certificate too.
    (docker / host).mkdir(parents=True)
    shutil.copy(mtls.ca, docker / host / "ca.crt")
    no_client_certificate = cli("pull", image)
    assert no_client_certificate.code == 1
    assert "CERTIFICATE_VERIFY_FAILED" not in no_client_certificate.err, no_client_certificate.err

    # Podman's folder holds the client certificate and key: no flag needed any more.
    (containers / host).mkdir(parents=True)
    for path in mtls.client_cert:
        shutil.copy(path, containers / host / path.name)
    pulled = cli("pull", image)
    assert pulled.code == 0, pulled.err

    # A certificate without its key is a mistake worth one clear line.
    shutil.copy(mtls.client_cert[0], containers / host / "aaa.cert")
    half = cli("pull", image)
    assert half.code == 1 and half.err.startswith("registry: missing key aaa.key"), half.err
