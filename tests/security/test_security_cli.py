"""`dspex serve` with TLS, mutual TLS and an API key, as users run it: a real process, real clients.

Refused settings (half a TLS pair, an unreadable, empty or oversized file, a key that is not
the certificate's) end the command with exit code 2 and one line saying why, never the key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pki import CertificateAuthority, Issued

from bridge import AuthenticationError, SessionContext, connect
from bridge.server import serve_process
from bridge.server._cli import _parser, serve

WAIT = 10.0
KEY = "cli-k3y-value"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("cli_pki"))


@pytest.fixture(scope="module")
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.server()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api_key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


async def test_serve_tls_answers_a_trusting_client_and_refuses_a_plaintext_one(
    ca: CertificateAuthority, server_cert: Issued
) -> None:
    args = ["--port", "0", "--tls-cert", str(server_cert.cert_path), "--tls-key", str(server_cert.key_path)]
    with serve_process(args) as served:
        channel = connect(served.address, root_certificates=ca.cert_path)
        async with channel, SessionContext("cli_tls", channel, timeout=WAIT) as session:
            await session.register_variable("x", "integer", 1)
            await session.set_variable("x", 2)
            assert await session.get_variable("x") == 2
        async with connect(served.address) as plaintext:
            with pytest.raises(grpc.RpcError, match="as a TLS server does to a plaintext client"):
                await SessionContext("cli_plain", plaintext, timeout=WAIT).initialize()


async def test_serve_mutual_tls_with_an_api_key_file(
    ca: CertificateAuthority, server_cert: Issued, key_file: Path
) -> None:
    args = [
        "--port", "0",
        "--tls-cert", str(server_cert.cert_path),
        "--tls-key", str(server_cert.key_path),
        "--tls-client-ca", str(ca.cert_path),
        "--api-key-file", str(key_file),
    ]  # fmt: skip
    client = ca.client()
    with serve_process(args) as served:
        assert KEY not in Path(f"/proc/{served.process.pid}/cmdline").read_bytes().decode()
        async with connect(
            served.address, root_certificates=ca.cert, certificate_chain=client.cert, private_key=client.key
        ) as channel:
            with pytest.raises(AuthenticationError, match="requires an API key"):
                await SessionContext("cli_mtls", channel, timeout=WAIT).initialize()
            async with SessionContext("cli_mtls", channel, api_key=KEY, timeout=WAIT) as session:
                await session.register_variable("x", "integer", 1)
                assert await session.get_variable("x") == 1
        async with connect(served.address, root_certificates=ca.cert) as no_cert:
            with pytest.raises(grpc.RpcError, match="a mutual-TLS server to a client without a certificate"):
                await SessionContext("cli_no_cert", no_cert, api_key=KEY, timeout=WAIT).initialize()


async def test_serve_takes_the_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPEX_API_KEY", KEY)
    with serve_process() as served:  # the child inherits the environment
        async with connect(served.address) as channel:
            with pytest.raises(AuthenticationError, match="invalid API key"):
                await SessionContext("env", channel, api_key="other", timeout=WAIT).initialize()
            await SessionContext("env", channel, api_key=KEY, timeout=WAIT).initialize()


def test_a_key_that_is_not_the_certificates_stops_serve_with_a_clear_error(
    ca: CertificateAuthority, server_cert: Issued
) -> None:
    other = ca.server("cli_other")
    tls = ["--tls-cert", str(server_cert.cert_path), "--tls-key", str(other.key_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bridge.server", "serve", "--port", "0", *tls],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "dspex: grpc refused the TLS certificate chain and private key" in done.stderr
    assert done.stdout == ""  # never ready


def test_an_api_key_on_the_command_line_is_not_an_option() -> None:
    """Not even as an abbreviation of --api-key-file: a secret in argv shows in `ps`."""
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["serve", "--api-key", KEY])
    assert info.value.code == 2


@pytest.mark.parametrize(
    "options, message",
    [
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "{key}"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "{cert}"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "{missing}", "--tls-key", "{key}"], "No such file or directory"),
        (["--tls-cert", "{key}", "--tls-key", "{key}"], "TLS certificate chain '{key}' holds no PEM"),
        (["--api-key-file", "{missing}"], "No such file or directory"),
        (["--api-key-file", "{empty}"], "--api-key-file '{empty}' is empty"),
        (["--api-key-file", "{huge}"], "--api-key-file '{huge}' is larger than 4098 bytes"),
        (["--api-key-file", "{binary}"], "--api-key-file '{binary}' is not UTF-8 text"),
    ],
)
async def test_refused_settings_exit_2_with_one_line_saying_why(
    options: list[str],
    message: str,
    server_cert: Issued,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {
        "cert": server_cert.cert_path,
        "key": server_cert.key_path,
        "missing": tmp_path / "missing.pem",
        "empty": tmp_path / "empty",
        "huge": tmp_path / "huge",
        "binary": tmp_path / "binary",
    }
    paths["empty"].write_text("\n")
    paths["huge"].write_text(KEY * 1000)
    paths["binary"].write_bytes(b"\xff\xfe" + KEY.encode())
    args = _parser().parse_args(["serve", "--port", "0", *(o.format(**paths) for o in options)])
    assert await serve(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dspex: ") and message.format(**paths) in err and err.count("\n") == 1
    assert KEY not in err
