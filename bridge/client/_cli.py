"""`dspex export` and `dspex import`: a session's variables to a file (or stdout) and back, against a running server.

The session is named by --session / DSPEX_SESSION_ID and opened with its token (--token /
DSPEX_SESSION_TOKEN), as any other client of it would. An import without a token creates the
session and prints its token on stderr, so that the program that uses it can join.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from ..errors import BridgeError, SessionNotFoundError
from ._session import SessionContext, connect

FORMATS = ("json", "yaml", "pickle", "parquet")
_SUFFIXES = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".parquet": "parquet",
}


def add_parsers(sub: Any) -> None:
    """Adds `export` and `import` to the `dspex` command's subcommands."""
    export = sub.add_parser(
        "export",
        help="write a session's variables to a file or stdout",
        description="Export a consistent snapshot of a session's variables (see docs/interchange.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _connection(export)
    export.add_argument("--out", "-o", default="-", help="file to write; - for stdout")
    export.add_argument("--format", "-f", choices=FORMATS, help="default: from --out's suffix, else json")
    export.add_argument("--filter", dest="filter_pattern", help="RE2 regex a variable's whole name must match")
    export.add_argument("--include-history", action="store_true", help="also earlier versions and optimization runs")
    export.add_argument("--no-dependencies", action="store_true", help="leave out the dependency graph")
    export.set_defaults(run=_export)

    imp = sub.add_parser(
        "import",
        help="apply an export to a session",
        description="Import an export into a session; prints the summary as JSON on stdout. Exit code 1 "
        "when a variable failed (an atomic import then applied nothing).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _connection(imp)
    imp.add_argument("file", nargs="?", default="-", help="file to read; - for stdin")
    imp.add_argument("--format", "-f", choices=FORMATS, help="default: from the file's suffix, else json")
    imp.add_argument(
        "--merge-strategy", choices=("replace", "keep", "merge"), default="replace", help="for existing variables"
    )
    imp.add_argument("--dry-run", action="store_true", help="report what the import would do; change nothing")
    imp.add_argument("--non-atomic", action="store_true", help="apply the valid variables even if some fail")
    imp.add_argument(
        "--allow-pickle", action="store_true", help="load a pickle (unpickling can run code: only your own files)"
    )
    imp.set_defaults(run=_import)


def _connection(parser: argparse.ArgumentParser) -> None:
    # Environment values are read when the command runs, so that --help never prints a token.
    parser.add_argument("--address", help="server HOST:PORT (default: env DSPEX_ADDRESS, else 127.0.0.1:50051)")
    parser.add_argument("--session", help="session ID (default: env DSPEX_SESSION_ID)")
    parser.add_argument("--token", help="the session's token (default: env DSPEX_SESSION_TOKEN)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the call may take")


def _format(given: str | None, path: str) -> str:
    return given or _SUFFIXES.get(Path(path).suffix.lower(), "json")


async def _open(args: argparse.Namespace, create: bool) -> SessionContext:
    """The session, resumed with its token; created (its token on stderr) only when `create` and no token."""
    if not args.session:
        raise SystemExit("dspex: name the session with --session or DSPEX_SESSION_ID")
    if not args.token and not create:
        raise SystemExit("dspex: give the session's token with --token or DSPEX_SESSION_TOKEN")
    session = SessionContext(args.session, connect(args.address), token=args.token, timeout=args.timeout)
    await session.initialize()
    if args.token and session.token != args.token:  # the server had no such session: it made a new one
        await session.cleanup()
        raise SessionNotFoundError(f"session {args.session!r} not found on {args.address} (expired?)")
    if not args.token:
        print(f"dspex: created session {args.session!r}; DSPEX_SESSION_TOKEN={session.token}", file=sys.stderr)
    return session


async def _export(args: argparse.Namespace) -> int:
    session = await _open(args, create=False)
    try:
        data = await session.export_variables(
            format=_format(args.format, args.out),
            include_history=args.include_history,
            include_dependencies=not args.no_dependencies,
            filter_pattern=args.filter_pattern,
        )
    finally:
        await session.channel.close()
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(args.out).write_bytes(data)
    return 0


async def _import(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    session = await _open(args, create=True)
    try:
        summary = await session.import_variables(
            data,
            format=_format(args.format, args.file),
            merge_strategy=args.merge_strategy,
            dry_run=args.dry_run,
            atomic=not args.non_atomic,
            allow_pickle=args.allow_pickle,
        )
    finally:
        await session.channel.close()
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


async def run(args: argparse.Namespace) -> int:
    """Runs `dspex export` or `dspex import`; a refused call is one line on stderr and exit code 1."""
    args.address = args.address or os.environ.get("DSPEX_ADDRESS") or "127.0.0.1:50051"
    args.session = args.session or os.environ.get("DSPEX_SESSION_ID")
    args.token = args.token or os.environ.get("DSPEX_SESSION_TOKEN")
    try:
        return await args.run(args)
    except (BridgeError, OSError) as exc:
        print(f"dspex: {exc}", file=sys.stderr)
    except grpc.aio.AioRpcError as exc:
        print(f"dspex: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1
