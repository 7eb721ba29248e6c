"""Watch limits, and bad Watch requests straight on the wire: each gets a clear error, and the server goes on."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from watch_support import FAST_RECONNECT, take, until

from bridge import BridgeServer, Limits, SessionContext, connect
from bridge._proto import bridge_pb2 as pb
from bridge.errors import LimitExceededError
from bridge.server import serve_process
from bridge.store import MemoryStore

WATCH = "/dspex_bridge.v1.BridgeService/Watch"


@pytest.fixture
async def limited():
    server = await BridgeServer(
        limits=Limits(max_watches_per_session=2, max_watches=3, max_watch_refs=4, max_event_log_entries=5)
    ).start()
    async with connect(server.address) as channel:
        yield server, channel
    await server.stop(1)


async def test_watches_per_session_are_bounded_and_freed_when_closed(limited) -> None:
    server, channel = limited
    session = await SessionContext("one", channel).initialize()
    await session.register_variable("x", "integer", 0)
    first, second = session.watch_variable("x"), session.watch_variable("x")
    await first.started()
    await second.started()
    with pytest.raises(LimitExceededError, match="watches opened by session 'one': 3 exceeds the limit of 2") as info:
        await session.watch_variable("x").started()
    assert info.value.details["rule"] == "max_watches_per_session"
    assert server.servicer.watches.count_for("one") == 2
    first.close()
    await server.servicer.watches.wait_for_count(1)
    third = session.watch_variable("x")
    assert await third.started() == 1
    await session.close()


async def test_watches_per_server_are_bounded(limited) -> None:
    _, channel = limited
    sessions = [await SessionContext(f"s{i}", channel).initialize() for i in range(2)]
    for s in sessions:
        await s.register_variable("x", "integer", 0)
    watches = [s.watch_variable("x") for s in sessions for _ in range(2)][:3]
    for watch in watches:
        await watch.started()
    with pytest.raises(LimitExceededError, match="watches on this server: 4 exceeds the limit of 3"):
        await sessions[1].watch_variable("x").started()
    for s in sessions:
        await s.close()


async def test_refs_per_watch_are_bounded(limited) -> None:
    _, channel = limited
    session = await SessionContext("refs", channel).initialize()
    with pytest.raises(LimitExceededError, match="variables in one watch: 5 exceeds the limit of 4"):
        await session.watch_variables([f"v{i}" for i in range(5)]).started()
    await session.close()


def raw(channel: grpc.aio.Channel, request: pb.WatchRequest | bytes) -> grpc.aio.UnaryStreamCall:
    serializer = None if isinstance(request, bytes) else pb.WatchRequest.SerializeToString
    watch = channel.unary_stream(
        WATCH, request_serializer=serializer, response_deserializer=pb.WatchResponse.FromString
    )
    return watch(request)


async def failure(call: grpc.aio.UnaryStreamCall) -> tuple[grpc.StatusCode, pb.ErrorDetail | None, str]:
    """How a stream fails: its status code, its ErrorDetail trailer (if any) and its message."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while True:
            if await call.read() is grpc.aio.EOF:
                raise AssertionError("the stream ended without an error")
    trailers = info.value.trailing_metadata()
    detail = next((pb.ErrorDetail.FromString(v) for k, v in trailers if k == "dspex-error-bin"), None)
    return info.value.code(), detail, info.value.details()


@pytest.fixture
async def wired(limited):
    server, channel = limited
    session = await SessionContext("wired", channel).initialize()
    await session.register_variable("x", "integer", 0)
    yield server, channel, session
    await session.close()


async def test_bad_watch_requests_are_refused_with_their_rule(wired) -> None:
    _, channel, session = wired
    token = session.token
    cases = [
        (pb.WatchRequest(session_token=token), grpc.StatusCode.INVALID_ARGUMENT, "refs"),
        (pb.WatchRequest(session_token=token, refs=["bad name"]), grpc.StatusCode.INVALID_ARGUMENT, "name_pattern"),
        (pb.WatchRequest(session_token=token, refs=["x", "x"]), grpc.StatusCode.INVALID_ARGUMENT, "duplicate_refs"),
        (
            pb.WatchRequest(session_token=token, refs=["x"], from_revision=99),
            grpc.StatusCode.INVALID_ARGUMENT,
            "from_revision",
        ),
        (pb.WatchRequest(refs=["x"]), grpc.StatusCode.UNAUTHENTICATED, "token_missing"),
        (
            pb.WatchRequest(session_token=token, refs=["var_" + "a" * 24], session_id="other"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "refs",
        ),
        (pb.WatchRequest(session_token=token, refs=["x"], session_id="nobody"), grpc.StatusCode.NOT_FOUND, ""),
        (b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, "decode"),
    ]
    for request, code, rule in cases:
        got, detail, message = await failure(raw(channel, request))
        assert got == code, (request, message)
        assert detail is not None and detail.details.get("rule", "") == rule, (request, detail)
    assert await session.get_variable("x") == 0  # still serving


async def test_a_compacted_revision_is_out_of_range_with_the_oldest_kept(wired) -> None:
    _, channel, session = wired
    for value in range(1, 11):
        await session.set_variable("x", value)
    request = pb.WatchRequest(session_token=session.token, refs=["x"], from_revision=2)
    code, detail, message = await failure(raw(channel, request))
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert (detail.kind, detail.details["oldest_revision"], detail.details["revision"]) == (
        "revision_compacted",
        "7",
        "2",
    )
    assert "take a fresh snapshot" in message


async def test_the_wire_protocol_header_snapshot_changes_and_resume(wired) -> None:
    """What a client in another language does: open, read, then resume from the next revision."""
    _, channel, session = wired
    call = raw(channel, pb.WatchRequest(session_token=session.token, refs=["x"], include_initial=True))
    header, snapshot = await call.read(), await call.read()
    assert (header.kind, header.revision, list(header.header.names)) == (pb.WATCH_HEADER, 1, ["x"])
    assert header.header.session_id == "wired" and header.header.history_id and header.header.store_id
    assert (snapshot.kind, snapshot.revision, [e.value.int_value for e in snapshot.events]) == (
        pb.WATCH_SNAPSHOT,
        1,
        [0],
    )
    await session.set_variable("x", 1)
    change = await call.read()
    assert (change.kind, change.revision) == (pb.WATCH_CHANGE, 2)
    [event] = change.events
    assert (event.name, event.version, event.value.int_value, event.old_value.int_value) == ("x", 2, 1, 0)
    assert event.writer == "wired" and not event.deleted
    call.cancel()

    await session.set_variable("x", 2)  # written while no stream is open
    resumed = raw(
        channel,
        pb.WatchRequest(session_token=session.token, refs=["x"], from_revision=3, history_id=header.header.history_id),
    )
    assert (await resumed.read()).kind == pb.WATCH_HEADER
    missed = await resumed.read()
    assert (missed.kind, missed.revision, missed.events[0].value.int_value) == (pb.WATCH_CHANGE, 3, 2)
    resumed.cancel()

    other_history = pb.WatchRequest(session_token=session.token, refs=["x"], from_revision=3, history_id="not-it")
    code, detail, _ = await failure(raw(channel, other_history))
    assert (code, detail.details["reason"]) == (grpc.StatusCode.OUT_OF_RANGE, "history_changed")


async def test_a_watch_through_the_session_client_survives_its_bad_neighbours(wired) -> None:
    _, channel, session = wired
    watch = session.watch_variable("x")
    await take(watch, 1)
    await failure(raw(channel, b"\x0a"))  # truncated: refused, the open watch unaffected
    await session.set_variable("x", 5)
    [update] = await take(watch, 1)
    assert update.value == 5
    watch.close()


async def test_a_change_too_large_for_a_message_ends_the_watch_with_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await BridgeServer(limits=Limits(max_message_bytes=64 * 1024)).start()
    try:
        async with connect(server.address) as channel:
            session = await SessionContext("big", channel).initialize()
            await session.register_variable("e", "embedding", np.zeros(5000))  # 40 KB: it fits, twice it does not
            watch = session.watch_variable("e")
            await take(watch, 1)
            await session.set_variable("e", np.ones(5000))
            with pytest.raises(LimitExceededError, match=r"watch of \['e'\]: the write at revision 2 is \d+ bytes"):
                await take(watch, 1)
            assert await session.get_variable("e") is not None  # the server goes on
            assert "rpc failed" not in caplog.text
            await session.close()
    finally:
        await server.stop(1)


async def test_progress_messages_keep_a_quiet_watchers_resume_point_within_retention() -> None:
    """A watcher of x while only y is written: the host says how far it has read, so a reconnect
    resumes (an update) instead of falling below retention (a resync)."""
    store = MemoryStore(Limits(max_event_log_entries=64))
    server = await BridgeServer(store=store, limits=store.limits).start()
    port = server.port
    async with connect(server.address, **FAST_RECONNECT) as channel:
        session = await SessionContext("quiet", channel).initialize()
        await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in ("x", "y")])
        watch = session.watch_variable("x", include_initial=False)
        await watch.started()
        waiting = asyncio.create_task(until(watch, lambda u: u.value == 1))  # reading, as a consumer does
        for value in range(1, 201):
            await session.set_variable("y", value)  # 200 writes: the log keeps 64
        await server.stop(1)  # the stream ends after what it has sent, progress included
        server = await BridgeServer(port=port, store=store, limits=store.limits).start()
        try:
            await session.set_variable("x", 1)
            [update] = await waiting
            assert (update.kind, update.old_value) == ("update", 0)
            await session.close()
        finally:
            await server.stop(1)


async def test_the_host_sends_progress_while_other_variables_are_written(wired) -> None:
    _, channel, session = wired
    await session.register_variable("y", "integer", 0)
    call = raw(channel, pb.WatchRequest(session_token=session.token, refs=["x"]))
    assert (await call.read()).kind == pb.WATCH_HEADER
    for value in range(1, 17):
        await session.set_variable("y", value)  # revisions 3..18
    await session.set_variable("x", 1)
    messages = [(m.kind, m.revision) for m in [await call.read() for _ in range(17)]]
    # With a 5-write log, each write of another variable is reported (every 1/8 of the log, at most 128).
    assert messages == [(pb.WATCH_PROGRESS, r) for r in range(3, 19)] + [(pb.WATCH_CHANGE, 19)]
    call.cancel()


def test_the_cli_sets_the_watch_limits() -> None:
    with serve_process(["--port", "0", "--event-log-entries", "3", "--max-watches", "1"]) as served:

        async def check() -> None:
            async with connect(served.address) as channel:
                session = await SessionContext("cli", channel).initialize()
                await session.register_variable("x", "integer", 0)
                for value in range(1, 6):
                    await session.set_variable("x", value)
                stale = pb.WatchRequest(session_token=session.token, refs=["x"], from_revision=2)
                code, detail, _ = await failure(raw(channel, stale))
                assert (code, detail.details["oldest_revision"]) == (grpc.StatusCode.OUT_OF_RANGE, "4")
                watch = session.watch_variable("x")
                await watch.started()
                with pytest.raises(LimitExceededError, match="watches on this server: 2 exceeds the limit of 1"):
                    await session.watch_variable("x").started()
                await session.close()

        asyncio.run(check())
