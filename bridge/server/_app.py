"""The gRPC server: BridgeService plus standard health and reflection, with graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .._proto import bridge_pb2 as pb
from ..limits import DEFAULT_LIMITS, Limits, channel_options
from ..store import Store, open_store
from ._handlers import method_handlers
from ._service import BridgeServicer
from ._tls import TLSConfig, credentials_load

log = logging.getLogger("dspex.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BridgeService"].full_name


class AddressInUseError(OSError):
    """The server could not bind its address, almost always because another process holds it."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"cannot serve on {host}:{port}: address already in use (is another dspex serve running? "
            "stop it, or pick another --port; 0 picks a free one)",
        )


class BridgeServer:
    """A running (or ready-to-run) session host.

    Use `await BridgeServer().start()` for an ephemeral port in tests and notebooks, or
    `async with BridgeServer(port=50051) as server:`; `address` is what clients dial.
    `tls` (a TLSConfig) serves TLS, mutual with a client CA, instead of plaintext; `api_key`
    makes creating a session require that key (see docs/security.md).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        store: Store | str = "memory",
        *,
        limits: Limits = DEFAULT_LIMITS,
        session_ttl: float = 3600.0,
        lease_ttl: float = 30.0,
        reap_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        tls: TLSConfig | None = None,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits
        self.tls = tls
        self.store = open_store(store, limits) if isinstance(store, str) else store
        self.servicer = BridgeServicer(
            self.store, session_ttl=session_ttl, limits=limits, clock=clock, lease_ttl=lease_ttl, api_key=api_key
        )
        self._requires_api_key = api_key is not None
        self._reap_interval = (
            reap_interval if reap_interval is not None else max(1.0, min(session_ttl / 4, lease_ttl / 2, 30.0))
        )
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> BridgeServer:
        # No SO_REUSEPORT (grpc's default): a second server on a taken port must fail, not split the
        # port's connections between two independent stores.
        options = [*channel_options(self.limits.max_message_bytes), ("grpc.so_reuseport", 0)]
        server = grpc.aio.server(options=options)
        # Generic, not registered: on grpcio 1.85 a registered method costs about 8 µs more per
        # call (measured in benchmarks/, see BENCHMARKS.md), 3 % of a small call here.
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, method_handlers(self.servicer)),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        self.port = await self._bind(server)
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._reaper = asyncio.create_task(self._reap())
        transport = "plaintext" if self.tls is None else "mutual TLS" if self.tls.mutual else "TLS"
        log.info(
            "server started",
            extra={
                "address": self.address,
                "store": type(self.store).__name__,
                "transport": transport,
                "api_key": self._requires_api_key,
            },
        )
        if self.tls is None and not _is_loopback(self.host):
            log.warning(
                "serving plaintext on a non-loopback address: session tokens and the API key cross the network "
                "unencrypted; serve TLS (--tls-cert/--tls-key) or bind 127.0.0.1",
                extra={"address": self.address},
            )
        return self

    async def _bind(self, server: grpc.aio.Server) -> int:
        """Binds the port, TLS or plaintext; the port bound (the free one chosen for port 0)."""
        address = f"{self.host}:{self.port}"
        try:
            if self.tls is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, self.tls.credentials())
        except RuntimeError as exc:  # grpc's way of saying the bind failed, for a taken address or bad credentials
            if self.tls is not None and not await credentials_load(self.tls):
                raise ValueError(
                    "grpc refused the TLS certificate chain and private key: is the key the one of the "
                    "certificate, unencrypted, and both PEM?"
                ) from None
            raise AddressInUseError(self.host, self.port) from exc
        if bound == 0:
            raise AddressInUseError(self.host, self.port)
        return bound

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval)
            try:
                await self.servicer.touch_watching_sessions()
                await self.servicer.expire_sessions()
                await self.servicer.expire_optimizations()
            except Exception:
                log.exception("reaper failed")

    async def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls, lets running ones finish within `grace` seconds, then closes the store.

        Watch streams never finish by themselves: they are ended at once with UNAVAILABLE, which
        their clients answer by reconnecting (to this address, once a server serves it again).
        """
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self.servicer.close_streams()
        await self._server.stop(grace)
        self._server = None
        await self.store.close()
        log.info("server stopped", extra={"address": self.address})

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> BridgeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (plaintext is then safe from the network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
