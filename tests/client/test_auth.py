"""Credentials and authentication: the Docker-compatible auths file, `login`/`logout`, the Bearer token
flow and HTTP Basic against a real token-issuing front (tests.client.auth_gateway) before a real registry,
and TLS with a custom CA."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from registry.client.credentials import DOCKER_HUB_KEY, Credentials, CredentialStore
from tests.client.auth_gateway import Gateway, Served
from tests.client.conftest import CLI, Pushed
from tests.support.server import RegistryProcess

USER, PASSWORD = "alice", "wonderland"


def test_the_credentials_file_is_docker_compatible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"HttpHeaders": {"X-Kept": "yes"}}))
    credentials = CredentialStore(path)
    credentials.set("127.0.0.1:5000", "bob", "pass:with:colons")
    credentials.set("docker.io", "hubuser", "hubpass")
    document = json.loads(path.read_text())
    assert document["HttpHeaders"] == {"X-Kept": "yes"}
    assert base64.b64decode(document["auths"]["127.0.0.1:5000"]["auth"]) == b"bob:pass:with:colons"
    assert base64.b64decode(document["auths"][DOCKER_HUB_KEY]["auth"]) == b"hubuser:hubpass"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.get("127.0.0.1:5000") == Credentials("bob", "pass:with:colons")
    assert credentials.get("index.docker.io") == Credentials("hubuser", "hubpass")
    assert credentials.get("127.0.0.1:5001") is None
    assert credentials.remove("127.0.0.1:5000") and not credentials.remove("127.0.0.1:5000")
    assert "127.0.0.1:5000" not in json.loads(path.read_text())["auths"]

    # What `docker login` stored is used, read-only.
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    token = base64.b64encode(b"dockeruser:dockerpass").decode()
    name_only = base64.b64encode(b"dockeruser:").decode()
    auths = {
        "https://r.example.com/v1/": {"auth": token},
        "s.example.com": {"auth": name_only, "identitytoken": "refresh-me"},
        "t.example.com": {"auth": name_only},
    }
    (docker_config / "config.json").write_text(json.dumps({"auths": auths}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    assert credentials.get("r.example.com") == Credentials("dockeruser", "dockerpass")
    assert credentials.get("s.example.com") == Credentials("dockeruser", identity_token="refresh-me")
    assert credentials.get("t.example.com") is None  # an empty password is no credential


@pytest.fixture
def gateway(server: RegistryProcess) -> Iterator[Served]:
    served = Served(Gateway(backend=server.url))
    yield served
    served.close()


@pytest.mark.clients
def test_login_then_pull_and_push_through_the_token_flow(
    cli: CLI, gateway: Served, pushed_busybox: Pushed, repo: str, tmp_path: Path
) -> None:
    host = f"127.0.0.1:{gateway.port}"
    image = f"{host}/client/busybox:1"
    anonymous = cli("pull", image)
    assert anonymous.code == 1 and "token request" in anonymous.err and "401" in anonymous.err

    wrong = cli("login", host, "-u", USER, "-p", "not-it")
    assert wrong.code == 1 and "401" in wrong.err
    assert not (tmp_path / "auth.json").exists()

    assert cli("login", host, "-u", USER, "-p", PASSWORD).out.strip() == "Login Succeeded"
    auths = json.loads((tmp_path / "auth.json").read_text())["auths"]
    assert base64.b64decode(auths[host]["auth"]).decode() == f"{USER}:{PASSWORD}"

    challenges = gateway.gateway.challenges
    pulled = cli("pull", image)
    assert pulled.code == 0, pulled.err
    # The unauthenticated ping and the manifest's first try; the token is reused for every blob.
    assert gateway.gateway.challenges - challenges == 2
    assert ["repository:client/busybox:pull"] in gateway.gateway.token_requests

    target = f"{host}/{repo}:1"
    assert cli("tag", image, target).code == 0
    pushed = cli("push", target)
    assert pushed.code == 0, pushed.err
    assert "Mounted from client/busybox" in pushed.out  # the mount's token also asked to read the source
    assert [
        f"repository:{repo}:pull,push",
        "repository:client/busybox:pull",
    ] in gateway.gateway.token_requests

    assert cli("logout", host).out.strip() == f"Removing login credentials for {host}"
    assert cli("logout", host).out.strip() == f"Not logged in to {host}"
    assert cli("pull", image).code == 1


def test_basic_auth(cli: CLI) -> None:
    served = Served(Gateway(mode="basic"))
    try:
        host = f"127.0.0.1:{served.port}"
        refused = cli("login", host, "-u", USER, "-p", "nope")
        assert refused.code == 1 and "unauthorized" in refused.err
        assert cli("login", host, "-u", USER, "-p", PASSWORD).code == 0
    finally:
        served.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a certificate it signed for localhost: the files a TLS test needs."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def test_tls_with_a_custom_ca(cli: CLI, certificate: dict[str, Path]) -> None:
    served = Served(Gateway(), (certificate["cert"], certificate["key"]))
    try:
        host = f"localhost:{served.port}"  # not an address literal: TLS is required
        untrusted = cli("login", host, "-u", USER, "-p", PASSWORD)
        assert untrusted.code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.err
        trusted = cli("login", host, "-u", USER, "-p", PASSWORD, "--ca-cert", str(certificate["ca"]))
        assert trusted.code == 0, trusted.err
        assert cli("login", host, "-u", USER, "-p", PASSWORD, "--insecure").code == 0
    finally:
        served.close()
