"""Client transport security: TLS channel credentials for `connect`, and what a failed TLS setup likely means.

grpc reports every refused connection as UNAVAILABLE "failed to connect to all addresses",
whatever the cause; `explain_connect_failure` adds which TLS setting is likely wrong, so a
plaintext client of a TLS server (or the reverse) says so instead of looking like a server down.
"""

from __future__ import annotations

import grpc

from .._files import PemSource, load_pem


def channel_credentials(
    tls: bool | None,
    root_certificates: PemSource | None,
    certificate_chain: PemSource | None,
    private_key: PemSource | None,
    server_name_override: str | None,
) -> tuple[grpc.ChannelCredentials | None, dict[str, str]]:
    """The credentials (None: plaintext) and channel options that `connect`'s TLS arguments ask for."""
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("certificate_chain and private_key go together (a client certificate and its key)")
    wanted = root_certificates is not None or certificate_chain is not None or server_name_override is not None
    if tls is False and wanted:
        raise ValueError("tls=False conflicts with root_certificates, certificate_chain or server_name_override")
    if not (tls or wanted):
        return None, {}
    credentials = grpc.ssl_channel_credentials(
        root_certificates=None if root_certificates is None else load_pem(root_certificates, "root_certificates"),
        private_key=None if private_key is None else load_pem(private_key, "private_key", b"PRIVATE KEY"),
        certificate_chain=None if certificate_chain is None else load_pem(certificate_chain, "certificate_chain"),
    )
    options = {} if server_name_override is None else {"grpc.ssl_target_name_override": server_name_override}
    return credentials, options


#: (text grpc puts in a refused connection's details, what it likely means), checked in order.
_HINTS = (
    (
        "WRONG_VERSION_NUMBER",
        "the TLS handshake got no TLS answer: the server likely serves plaintext; connect without TLS "
        "arguments, or start the server with --tls-cert and --tls-key",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate is not trusted: root_certificates must hold the CA that signed it "
        "(or the self-signed certificate itself), and the certificate must be within its validity dates",
    ),
    (
        "Hostname Verification",
        "the server's certificate does not name the address dialed: dial a name or IP address its "
        "subjectAltName lists, or pass server_name_override= with one it does",
    ),
    (
        "Socket closed",
        "the server closed the connection while it was being set up, as a TLS server does to a plaintext "
        "client (connect with root_certificates=) and a mutual-TLS server to a client without a certificate "
        "signed by its client CA (pass certificate_chain= and private_key=)",
    ),
    (
        "andshake",
        "the TLS handshake failed: check root_certificates, and for mutual TLS certificate_chain and private_key",
    ),
)


def explain_connect_failure(exc: grpc.aio.AioRpcError, what: str) -> grpc.aio.AioRpcError:
    """`exc` with what is likely wrong put first in its details, when it is a connection refused during TLS setup.

    Still a grpc.aio.AioRpcError with the same code: a transport failure, as callers expect; else `exc` itself.
    """
    details = exc.details() or ""
    if exc.code() != grpc.StatusCode.UNAVAILABLE or "failed to connect" not in details:
        return exc
    for needle, hint in _HINTS:
        if needle in details:
            return grpc.aio.AioRpcError(
                exc.code(),
                exc.initial_metadata(),
                exc.trailing_metadata(),
                f"{what}: {hint} (grpc: {details})",
                exc.debug_error_string(),
            )
    return exc
