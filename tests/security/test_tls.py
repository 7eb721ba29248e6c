"""TLS and mutual TLS between real servers and clients on loopback, with certificates made by the test.

A refused connection must say what is likely wrong (plaintext against TLS, an untrusted or
misnamed certificate, a missing client certificate), yet stay a transport failure (an RpcError).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from pki import CertificateAuthority, Issued

from bridge import BridgeServer, SessionContext, connect
from bridge.server import AddressInUseError, TLSConfig

WAIT = 10.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.server()


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA the servers do not trust, and whose certificates the clients do not either."""
    return CertificateAuthority(tmp_path_factory.mktemp("stranger"), "stranger CA")


@pytest.fixture
async def tls_server(server_cert: Issued) -> AsyncIterator[BridgeServer]:
    async with BridgeServer(tls=TLSConfig(server_cert.cert_path, server_cert.key_path)) as server:
        yield server


@pytest.fixture
async def mtls_server(ca: CertificateAuthority, server_cert: Issued) -> AsyncIterator[BridgeServer]:
    tls = TLSConfig(server_cert.cert, server_cert.key, client_ca=ca.cert)
    async with BridgeServer(tls=tls) as server:
        yield server


async def refused(channel: grpc.aio.Channel) -> grpc.RpcError:
    """The error of a client's first call (initialize) on `channel`, which must fail."""
    async with channel:
        with pytest.raises(grpc.RpcError) as info:
            await SessionContext("refused", channel, timeout=WAIT).initialize()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # still a transport failure
    return info.value


async def round_trip(channel: grpc.aio.Channel, session_id: str) -> None:
    """Register, get, set and watch a variable: the session works end to end over `channel`."""
    async with channel, SessionContext(session_id, channel, timeout=WAIT) as session:
        await session.register_variable("temperature", "float", 0.7)
        assert await session.get_variable("temperature") == 0.7
        watch = session.watch_variable("temperature")
        initial = await asyncio.wait_for(anext(watch), WAIT)
        await session.set_variable("temperature", 0.9)
        update = await asyncio.wait_for(anext(watch), WAIT)
        watch.close()
        assert (initial.value, update.value, update.old_value) == (0.7, 0.9, 0.7)
        assert await session.get_variable("temperature") == 0.9


async def test_a_client_that_trusts_the_ca_works_end_to_end(tls_server: BridgeServer, ca: CertificateAuthority) -> None:
    await round_trip(connect(tls_server.address, root_certificates=ca.cert_path), "over_tls")


async def test_the_certificate_may_be_given_as_pem_bytes_and_dialed_by_name(
    tls_server: BridgeServer, ca: CertificateAuthority
) -> None:
    await round_trip(connect(f"localhost:{tls_server.port}", root_certificates=ca.cert), "by_name")


async def test_a_plaintext_client_is_refused_by_a_tls_server_with_a_clear_error(tls_server: BridgeServer) -> None:
    error = await refused(connect(tls_server.address))
    assert "initialize: the server closed the connection while it was being set up" in error.details()
    assert "as a TLS server does to a plaintext client (connect with root_certificates=)" in error.details()
    assert tls_server.store is not None and await tls_server.store.session_ids() == []


async def test_a_tls_client_of_a_plaintext_server_is_told_the_server_likely_serves_plaintext(
    server: BridgeServer, ca: CertificateAuthority
) -> None:
    error = await refused(connect(server.address, root_certificates=ca.cert))
    assert "the server likely serves plaintext; connect without TLS arguments" in error.details()


async def test_a_server_certificate_from_an_untrusted_ca_is_refused(
    tls_server: BridgeServer, stranger: CertificateAuthority
) -> None:
    error = await refused(connect(tls_server.address, root_certificates=stranger.cert))
    assert "the server's certificate is not trusted: root_certificates must hold the CA" in error.details()


async def test_a_certificate_that_does_not_name_the_host_is_refused_unless_overridden(
    ca: CertificateAuthority,
) -> None:
    internal = ca.server("internal", hosts=("bridge.internal",))
    async with BridgeServer(tls=TLSConfig(internal.cert, internal.key)) as server:
        error = await refused(connect(server.address, root_certificates=ca.cert))
        assert "does not name the address dialed" in error.details()
        assert "server_name_override=" in error.details()
        channel = connect(server.address, root_certificates=ca.cert, server_name_override="bridge.internal")
        await round_trip(channel, "overridden")


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_server: BridgeServer, ca: CertificateAuthority
) -> None:
    error = await refused(connect(mtls_server.address, root_certificates=ca.cert))
    assert "a mutual-TLS server to a client without a certificate signed by its client CA" in error.details()
    assert "(pass certificate_chain= and private_key=)" in error.details()
    assert await mtls_server.store.session_ids() == []


async def test_mutual_tls_refuses_a_certificate_signed_by_another_ca(
    mtls_server: BridgeServer, ca: CertificateAuthority, stranger: CertificateAuthority
) -> None:
    impostor = stranger.client("impostor")
    channel = connect(
        mtls_server.address,
        root_certificates=ca.cert,
        certificate_chain=impostor.cert_path,
        private_key=impostor.key_path,
    )
    error = await refused(channel)
    assert "mutual-TLS server" in error.details()
    assert await mtls_server.store.session_ids() == []


async def test_mutual_tls_accepts_a_client_certificate_signed_by_its_ca(
    mtls_server: BridgeServer, ca: CertificateAuthority
) -> None:
    client = ca.client()
    channel = connect(
        mtls_server.address, root_certificates=ca.cert, certificate_chain=client.cert, private_key=client.key
    )
    await round_trip(channel, "mutual")


async def test_a_key_that_is_not_the_certificates_fails_at_start_not_at_the_first_handshake(
    ca: CertificateAuthority, server_cert: Issued
) -> None:
    other = ca.server("other")
    server = BridgeServer(tls=TLSConfig(server_cert.cert, other.key))
    with pytest.raises(ValueError, match="grpc refused the TLS certificate chain and private key"):
        await server.start()


async def test_a_taken_port_is_still_reported_as_such_with_tls(tls_server: BridgeServer, server_cert: Issued) -> None:
    with pytest.raises(AddressInUseError, match="address already in use"):
        await BridgeServer(port=tls_server.port, tls=TLSConfig(server_cert.cert, server_cert.key)).start()


def test_tls_settings_are_checked_before_any_connection(tmp_path: Path, server_cert: Issued) -> None:
    with pytest.raises(ValueError, match="certificate_chain and private_key go together"):
        connect("127.0.0.1:1", root_certificates=server_cert.cert, certificate_chain=server_cert.cert)
    with pytest.raises(ValueError, match="tls=False conflicts"):
        connect("127.0.0.1:1", tls=False, root_certificates=server_cert.cert)
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(ValueError, match=r"root_certificates '.*ca\.der' holds no PEM"):
        connect("127.0.0.1:1", root_certificates=not_pem)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20))
    with pytest.raises(ValueError, match="larger than 1048576 bytes"):
        connect("127.0.0.1:1", root_certificates=huge)
    with pytest.raises(ValueError, match=r"TLS private key holds no PEM '-----BEGIN \.\.\.PRIVATE KEY-----' block"):
        TLSConfig(server_cert.cert, server_cert.cert)  # a certificate where the key belongs
    with pytest.raises(FileNotFoundError):
        TLSConfig(tmp_path / "missing.pem", server_cert.key)


def test_a_tls_config_never_shows_its_key(server_cert: Issued) -> None:
    config = TLSConfig(server_cert.cert, server_cert.key)
    assert repr(config) == "TLSConfig(mutual=False)"
    assert server_cert.key.decode() not in f"{config!r} {config!s}"


@pytest.mark.parametrize(
    "host, loopback",
    [
        *[(host, True) for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost")],
        *[(host, False) for host in ("0.0.0.0", "::", "bridge.internal")],
    ],
)
def test_plaintext_is_warned_about_unless_the_host_is_loopback(host: str, loopback: bool) -> None:
    from bridge.server._app import _is_loopback

    assert _is_loopback(host) is loopback
