"""The admin commands: `registry user ...`, `registry group ...` (on SQLite and PostgreSQL) and
`registry cert init`."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from registry.auth.passwords import verify_password
from registry.index import UserRecord
from registry.index.users import SQLUserDirectory
from tests.auth.conftest import cli, cli_output, data_args


@pytest.fixture(scope="module")
def args(own_database: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    args = data_args(tmp_path_factory.mktemp("admin") / "data", own_database)
    assert cli("migrate", "--create", *args) == 0
    return args


def user(args: list[str], name: str) -> UserRecord | None:
    url = args[3] if len(args) > 2 else f"sqlite+aiosqlite:///{Path(args[1]) / 'index.db'}"

    async def get() -> UserRecord | None:
        users = SQLUserDirectory(url)
        try:
            return await users.get_user(name)
        finally:
            await users.close()

    return asyncio.run(get())


def test_user_lifecycle(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli(
            "user",
            "add",
            "erin",
            "--password-stdin",
            "--group",
            "ops",
            "--group",
            "dev",
            *args,
            stdin="pw-erin-1\n",
        )
        == 0
    )
    record = user(args, "erin")
    assert record is not None and record.groups == ("dev", "ops") and not record.service_account
    assert record.password_hash.startswith("$scrypt$") and verify_password("pw-erin-1", record.password_hash)

    assert cli("user", "add", "erin", "--password-stdin", *args, stdin="another-pw\n") == 2
    assert "exists already" in capsys.readouterr().err

    assert cli("user", "passwd", "erin", "--password-stdin", *args, stdin="pw-erin-2\n") == 0
    record = user(args, "erin")
    assert record is not None and verify_password("pw-erin-2", record.password_hash)
    assert not verify_password("pw-erin-1", record.password_hash)

    code, listing = cli_output("user", "list", *args)
    assert code == 0 and "erin\tuser\tdev,ops" in listing.splitlines()

    assert cli("user", "rm", "erin", *args) == 0
    assert user(args, "erin") is None
    assert cli("user", "rm", "erin", *args) == 2
    assert "no such user" in capsys.readouterr().err
    _, groups = cli_output("group", "list", *args)
    assert "dev\t" in groups.splitlines()  # the group stays, empty


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("frank", "short", "at least 8"),
        ("Frank", "long-enough", "invalid name"),
        ("a/b", "long-enough", "invalid name"),
    ],
)
def test_bad_users_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str], name: str, password: str, message: str
) -> None:
    assert cli("user", "add", name, "--password-stdin", *args, stdin=password + "\n") == 2
    assert message in capsys.readouterr().err
    assert user(args, name) is None


def test_service_account_secret_is_printed_once(args: list[str]) -> None:
    code, secret = cli_output("user", "add", "ci", "--service-account", "--group", "builders", *args)
    secret = secret.strip()
    assert code == 0 and len(secret) >= 40
    record = user(args, "ci")
    assert record is not None and record.service_account and verify_password(secret, record.password_hash)
    assert secret not in record.password_hash
    # Rotating gives a new secret; the old one stops working.
    code, rotated = cli_output("user", "passwd", "ci", *args)
    record = user(args, "ci")
    assert record is not None and verify_password(rotated.strip(), record.password_hash)
    assert not verify_password(secret, record.password_hash)
    _, listing = cli_output("user", "list", *args)
    assert "ci\tservice\tbuilders" in listing.splitlines()


def test_groups(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("user", "add", "gina", "--password-stdin", *args, stdin="pw-gina-1\n") == 0
    assert cli("group", "add", "qa", *args) == 0
    assert cli("group", "add", "qa", *args) == 2
    assert cli("group", "add-member", "qa", "gina", *args) == 0
    assert cli("group", "add-member", "qa", "gina", *args) == 0  # already a member: fine
    assert cli("group", "add-member", "qa", "nobody", *args) == 2
    assert cli("group", "add-member", "nogroup", "gina", *args) == 2
    _, listing = cli_output("group", "list", *args)
    assert "qa\tgina" in listing.splitlines()
    assert user(args, "gina").groups == ("qa",)  # type: ignore[union-attr]
    assert cli("group", "rm-member", "qa", "gina", *args) == 0
    assert cli("group", "rm-member", "qa", "gina", *args) == 2
    assert cli("group", "add-member", "qa", "gina", *args) == 0
    assert cli("group", "rm", "qa", *args) == 0
    assert user(args, "gina").groups == ()  # type: ignore[union-attr]
    assert "qa\t" not in cli_output("group", "list", *args)[1]
    capsys.readouterr()


def test_console_script_runs_the_same_commands(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry", "user", "list", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "ci\tservice" in result.stdout


def test_cert_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tls"
    assert (
        cli(
            "cert",
            "init",
            "--host",
            "registry.internal",
            "--host",
            "localhost",
            "--ip",
            "10.1.2.3",
            "--out",
            str(out),
        )
        == 0
    )
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["registry.internal", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    server.verify_directly_issued_by(ca)

    # Again: the same CA issues a new server certificate, so clients keep trusting the server.
    assert cli("cert", "init", "--ip", "127.0.0.1", "--out", str(out)) == 0
    assert x509.load_pem_x509_certificate((out / "ca.crt").read_bytes()) == ca
    renewed = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert renewed != server
    renewed.verify_directly_issued_by(ca)
    assert "reused the CA" in capsys.readouterr().out

    assert cli("cert", "init", "--out", str(tmp_path / "none")) == 2
    assert cli("cert", "init", "--ip", "not-an-ip", "--out", str(tmp_path / "bad")) == 2
