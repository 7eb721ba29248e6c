"""The raw gRPC fan-out that watch fan-out is judged against: a grpc.aio stream per subscriber, nothing else.

`Subscribe` is a server-streaming call that sends an empty message once registered, then every
published message; `Publish` hands its bytes to every subscriber's queue. No (de)serializers, no
bounds, no resume: the least work a grpc.aio fan-out can do.
"""

from __future__ import annotations

import asyncio

import grpc

from bridge.limits import channel_options

SERVICE = "benchmarks.Fanout"
SUBSCRIBE = f"/{SERVICE}/Subscribe"
PUBLISH = f"/{SERVICE}/Publish"


class _Fanout:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()

    async def subscribe(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        try:
            await context.write(b"")  # registered: the subscriber may have publishing start
            while True:
                await context.write(await queue.get())
        finally:
            self.queues.discard(queue)

    async def publish(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        for queue in self.queues:
            queue.put_nowait(request)
        return b""


async def start_fanout_server() -> tuple[grpc.aio.Server, int]:
    fanout = _Fanout()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Subscribe": grpc.unary_stream_rpc_method_handler(fanout.subscribe),
            "Publish": grpc.unary_unary_rpc_method_handler(fanout.publish),
        },
    )
    server = grpc.aio.server(options=channel_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
