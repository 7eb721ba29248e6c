"""The server's TLS settings: its certificate and key, and for mutual TLS the CA its clients must present."""

from __future__ import annotations

import grpc

from .._files import PemSource, load_pem


class TLSConfig:
    """TLS for `BridgeServer(tls=...)`: each argument is PEM bytes or a path to a PEM file.

    `certificate_chain` is the server's certificate (then any intermediates) and must name the
    address clients dial in its subjectAltName; `private_key` is its unencrypted key. With
    `client_ca`, TLS is mutual: a client must present a certificate that chains to it, and one
    without is refused during the handshake, before any call.
    """

    __slots__ = ("certificate_chain", "client_ca", "private_key")

    def __init__(
        self, certificate_chain: PemSource, private_key: PemSource, client_ca: PemSource | None = None
    ) -> None:
        self.certificate_chain = load_pem(certificate_chain, "TLS certificate chain")
        self.private_key = load_pem(private_key, "TLS private key", b"PRIVATE KEY")
        self.client_ca = None if client_ca is None else load_pem(client_ca, "TLS client CA")

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by `client_ca`."""
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.mutual,
        )

    def __repr__(self) -> str:  # never the key
        return f"TLSConfig(mutual={self.mutual})"


async def credentials_load(config: TLSConfig) -> bool:
    """Whether grpc accepts `config` (a key that matches its certificate, PEM it can parse).

    grpc reports a bad certificate or key only as "failed to bind": asking it to bind a spare
    port with them tells that apart from an address already in use.
    """
    probe = grpc.aio.server()
    try:
        probe.add_secure_port("127.0.0.1:0", config.credentials())
    except RuntimeError:
        return False
    finally:
        await probe.stop(None)
    return True
