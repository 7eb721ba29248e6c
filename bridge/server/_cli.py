"""`dspex serve`: run a session host until SIGINT/SIGTERM, then shut down gracefully; `dspex export`/`import`
(bridge.client._cli) talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from .._files import read_bounded
from ..client._cli import add_parsers as add_interchange_parsers
from ..client._cli import run as run_interchange
from ..limits import DEFAULT_LIMITS, Limits
from ..store import BACKENDS, Store, open_store, parse_store
from ..store._sqlite_schema import SYNCHRONOUS
from ._app import AddressInUseError, BridgeServer
from ._auth import MAX_SECRET_CHARS
from ._logging import configure_logging
from ._tls import TLSConfig

API_KEY_ENV = "DSPEX_API_KEY"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspex", description="dspex-dspy session host")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the gRPC session server",
        description="Run the gRPC session server until SIGINT/SIGTERM. Prints 'dspex: serving on HOST:PORT' "
        "on stdout once it accepts calls; logs are JSON lines on stderr.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # else `--api-key SECRET` would be taken for --api-key-file, a secret in `ps`
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=50051, help="port to bind; 0 picks a free one")
    serve.add_argument(
        "--store",
        default="memory",
        type=_store_spec,
        metavar="|".join(b.form for b in BACKENDS.values()),
        help="where sessions and variables live: in this process (lost when it exits), in a SQLite file "
        "that outlives it, or in Redis (or a Redis Cluster), shared by every server started on it; "
        "redis URLs take ?prefix=P for the keys (see docs/stores.md)",
    )
    serve.add_argument(
        "--sqlite-synchronous",
        default="full",
        choices=SYNCHRONOUS,
        help="with --store sqlite:PATH: full syncs every commit to disk, so an acknowledged write survives a power "
        "loss; normal syncs at checkpoints only: faster, survives the server being killed, may lose the last "
        "writes to a power loss or an OS crash",
    )
    serve.add_argument("--max-message-mb", type=float, default=96.0, help="largest request/response in MiB")
    serve.add_argument("--session-ttl", type=float, default=3600.0, help="seconds an idle session lives")
    serve.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        help="seconds an optimization keeps its variables after its client's last call (a dead client's run expires)",
    )
    serve.add_argument(
        "--event-log-entries",
        type=int,
        default=DEFAULT_LIMITS.max_event_log_entries,
        help="writes each session's event log keeps, so that a watch can resume from before a disconnect",
    )
    serve.add_argument(
        "--event-log-mb",
        type=float,
        default=DEFAULT_LIMITS.max_event_log_bytes / 2**20,
        help="MiB of values each session's event log keeps",
    )
    serve.add_argument(
        "--history-versions",
        type=int,
        default=DEFAULT_LIMITS.max_history_per_variable,
        help="versions of each variable kept for get_variable_history and rollback (the current one always)",
    )
    serve.add_argument(
        "--history-mb",
        type=float,
        default=DEFAULT_LIMITS.max_history_bytes / 2**20,
        help="MiB of values each variable's kept versions may take",
    )
    serve.add_argument(
        "--history-age",
        type=float,
        default=DEFAULT_LIMITS.max_history_age_seconds,
        help="seconds a kept version lives (0: no age limit)",
    )
    serve.add_argument(
        "--max-watches", type=int, default=DEFAULT_LIMITS.max_watches, help="open watch streams on the server"
    )
    serve.add_argument("--grace", type=float, default=5.0, help="seconds running calls get at shutdown")
    serve.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="least severe log to emit"
    )
    security = serve.add_argument_group(
        "security",
        "TLS and the API key (see docs/security.md); without them: plaintext, and anyone who can "
        "connect may create a session, which is safe on 127.0.0.1 only",
    )
    security.add_argument("--tls-cert", metavar="PATH", help="serve TLS with this certificate chain (PEM)")
    security.add_argument("--tls-key", metavar="PATH", help="the certificate's private key (PEM, unencrypted)")
    security.add_argument(
        "--tls-client-ca",
        metavar="PATH",
        help="mutual TLS: refuse clients without a certificate signed by this CA (PEM)",
    )
    security.add_argument(
        "--api-key-file",
        metavar="PATH",
        help=f"creating a session requires the key in this file (its first line); else the {API_KEY_ENV} "
        "environment variable's value, if set. Never on the command line, where ps shows it",
    )
    add_interchange_parsers(sub)
    return parser


def _store_spec(spec: str) -> str:
    """`--store`'s value, checked as it is parsed, so a typo is a usage error naming the accepted forms."""
    try:
        parse_store(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def _open_store(args: argparse.Namespace, limits: Limits) -> Store:
    """The store `--store` names, with the options that apply to its kind."""
    backend, _ = parse_store(args.store)
    options = {"synchronous": args.sqlite_synchronous} if backend is BACKENDS["sqlite"] else {}
    return open_store(args.store, limits, **options)


def _tls(args: argparse.Namespace) -> TLSConfig | None:
    """The TLS settings the options name, or None for plaintext."""
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    return TLSConfig(args.tls_cert, args.tls_key, args.tls_client_ca)


def _api_key(args: argparse.Namespace) -> str | None:
    """The API key from --api-key-file (its first line), else from the environment; None for no key."""
    if args.api_key_file is None:
        return os.environ.get(API_KEY_ENV) or None
    data = read_bounded(args.api_key_file, MAX_SECRET_CHARS + 2, "--api-key-file")  # + a line break
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"--api-key-file {args.api_key_file!r} is not UTF-8 text") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ValueError(f"--api-key-file {args.api_key_file!r} is empty")
    return key


async def serve(args: argparse.Namespace) -> int:
    try:
        limits = Limits(
            max_message_bytes=int(args.max_message_mb * 1024 * 1024),
            max_event_log_entries=args.event_log_entries,
            max_event_log_bytes=int(args.event_log_mb * 1024 * 1024),
            max_history_per_variable=args.history_versions,
            max_history_bytes=int(args.history_mb * 1024 * 1024),
            max_history_age_seconds=args.history_age,
            max_watches=args.max_watches,
        )
        server = BridgeServer(
            args.host,
            args.port,
            _open_store(args, limits),
            limits=limits,
            session_ttl=args.session_ttl,
            lease_ttl=args.lease_ttl,
            tls=_tls(args),
            api_key=_api_key(args),
        )
    except (OSError, ValueError) as exc:  # an unreadable or malformed file (never echoes a key)
        print(f"dspex: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except AddressInUseError as exc:
        print(f"dspex: {exc.strerror}", file=sys.stderr, flush=True)
        return 1
    except ValueError as exc:  # TLS credentials grpc refused
        print(f"dspex: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"dspex: serving on {server.address}", flush=True)  # one plain line on stdout, for scripts
    await stop.wait()
    await server.stop(args.grace)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":
        return asyncio.run(run_interchange(args))
    configure_logging(args.log_level)
    return asyncio.run(serve(args))
