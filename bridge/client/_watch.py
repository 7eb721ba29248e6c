"""watch_variable / watch_variables / cancel_watch: the spec's streaming observation, on the resumable stream.

A `Watch` is an async iterator of `VariableUpdate`s, and also awaitable, so that the spec's
`asyncio.create_task(session.watch_variable('temperature'))` works as written: the task holds
the watch open until `cancel_watch(task)` (its result, should the watch end first, is the last
update). The stream opens when the watch is made (inside an event loop; else on first use).
Filter, debounce and throttle run here, on the client (they are Python callables and timers,
over `time.monotonic`); the server sends every write of the watched variables.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any

import grpc

from .._proto import bridge_pb2 as pb
from ..codec import decode
from ..errors import ValidationError
from ..limits import check_ref
from ._pacing import Debounce, Pipeline, Stage, Throttle
from ._updates import VariableUpdate, from_event
from ._watch_stream import SERVICE, Group, WatchClosed, WatchStream


class Watch(Coroutine[Any, Any, "VariableUpdate | None"]):
    """The updates of some variables, in order: `async for update in watch`, or `await watch` to hold it open.

    Iterating or awaiting ends it when the consumer is cancelled, as an async generator would;
    `close()` (or `session.cancel_watch(watch)`) ends it from anywhere, releasing the server's stream.
    """

    def __init__(
        self,
        stream: WatchStream,
        *,
        filter_fn: Callable[..., Any] | None,
        by_name: bool,
        stages: list[Stage],
        on_end: Callable[[Watch], None],
    ) -> None:
        self._stream = stream
        self._filter = filter_fn
        self._by_name = by_name  # watch_variables: filter_fn(name, old, new)
        self._pipeline = Pipeline(stages) if stages else None  # None: every update goes straight out
        self._on_end = on_end
        self._clock = time.monotonic
        self._known: dict[str, VariableUpdate] = {}  # name -> its latest update, filtered or not
        self._ready: deque[VariableUpdate] = deque()
        self._reading: asyncio.Future[Group] | None = None
        self._done = False
        self._runner: Coroutine[Any, Any, VariableUpdate | None] | None = None
        self._iterated = False

    @property
    def closed(self) -> bool:
        return self._done

    async def started(self) -> int:
        """Waits until the server has opened the watch; returns the revision it starts from: the initial
        values are as of that revision, and every later write of the watched variables follows."""
        try:
            return await self._stream.started()
        except WatchClosed:
            raise RuntimeError("the watch is closed") from None
        except BaseException:
            self._finish()
            raise

    def close(self) -> None:
        """Ends the watch now: an iteration in progress stops (StopAsyncIteration), a task awaiting it returns."""
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._stream.close()
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        self._on_end(self)

    # ------------------------------------------------------------ iterating

    def __aiter__(self) -> Watch:
        if self._runner is not None:
            raise RuntimeError("this watch is being awaited (it runs as a task); iterate another watch")
        self._iterated = True
        return self

    async def __anext__(self) -> VariableUpdate:
        try:
            return await self._next()
        except WatchClosed:
            self._finish()
            raise StopAsyncIteration from None
        except BaseException:  # an error, or the consumer's cancellation: the watch ends with it
            self._finish()
            raise

    async def _next(self) -> VariableUpdate:
        while not self._ready:
            if self._done:
                raise WatchClosed
            pipeline = self._pipeline
            deadline = pipeline.deadline() if pipeline is not None else None
            if deadline is None and self._reading is None:  # nothing pending: wait on the stream itself
                self._take(await self._stream.next_group())
                continue
            reading = self._reading
            if reading is None:
                reading = self._reading = asyncio.ensure_future(self._stream.next_group())
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            done, _ = await asyncio.wait((reading,), timeout=timeout)
            if self._done:  # closed meanwhile (which cancelled the read)
                raise WatchClosed
            if done:
                self._reading = None
                self._take(reading.result())
            if pipeline is not None:
                self._ready.extend(pipeline.due(self._clock()))
        return self._ready.popleft()

    def _take(self, group: Group) -> None:
        pipeline, ready = self._pipeline, self._ready
        now = self._clock() if pipeline is not None else 0.0
        for update in self._updates(group):
            if not self._passes(update):
                continue
            if pipeline is None:
                ready.append(update)
            else:
                ready.extend(pipeline.offer(update, now))

    def _updates(self, group: Group) -> list[VariableUpdate]:
        known = self._known
        if group.kind == "change":
            updates = []
            for event in group.events:
                if event.dependents:  # a variable a watched one depends on: not itself watched
                    update = from_event(event, "dependency", _decode_old(event), group.revision)
                    update.source, update.dependents = event.name, tuple(event.dependents)
                    updates.append(update)
                    continue
                previous = known.get(event.name)
                if (  # the value this client already holds is the old value: don't decode it again
                    previous is not None
                    and previous.variable_id == event.variable_id
                    and previous.version == event.version - 1
                ):
                    old = previous.value
                else:
                    old = _decode_old(event)
                update = from_event(event, "delete" if event.deleted else "update", old, group.revision)
                updates.append(update)
                if event.deleted:
                    known.pop(event.name, None)
                else:
                    known[event.name] = update
            return updates
        if group.kind == "initial":
            updates = [from_event(event, "initial", None, event.mod_revision) for event in group.events]
            known.update((u.name, u) for u in updates)
            return updates
        return self._resynced(group)

    def _resynced(self, group: Group) -> list[VariableUpdate]:
        """A fresh snapshot after lost history: each variable's current value, and a delete for each one gone."""
        known = self._known
        current = {event.name: event for event in group.events}
        updates = []
        for name in self._stream.names:
            previous = known.get(name)
            event = current.get(name)
            if event is not None:
                old = previous.value if previous is not None else None
                update = from_event(event, "resync", old, event.mod_revision)
                known[name] = update
                updates.append(update)
            elif previous is not None:
                del known[name]
                updates.append(
                    VariableUpdate(
                        variable_id=previous.variable_id,
                        name=name,
                        value=None,
                        old_value=previous.value,
                        metadata={},
                        timestamp=previous.timestamp,
                        source="",
                        version=previous.version,
                        revision=group.revision,
                        kind="delete",
                    )
                )
        return updates

    def _passes(self, update: VariableUpdate) -> bool:
        """filter_fn decides updates of a value that existed before; initial, resync, delete and creation pass."""
        if self._filter is None or update.kind != "update" or update.version == 1:
            return True
        if self._by_name:
            return bool(self._filter(update.name, update.old_value, update.value))
        return bool(self._filter(update.old_value, update.value))

    # ------------------------------------------------------------ awaiting (a task holding the watch open)

    async def _run(self) -> VariableUpdate | None:
        last = None
        while True:
            try:
                last = await self._next()
            except WatchClosed:
                self._finish()
                return last
            except BaseException:
                self._finish()
                raise

    def _driver(self) -> Coroutine[Any, Any, VariableUpdate | None]:
        if self._runner is None:
            if self._iterated:
                raise RuntimeError("this watch is being iterated; await another watch")
            self._runner = self._run()
        return self._runner

    def __await__(self) -> Generator[Any, None, VariableUpdate | None]:
        return self._driver().__await__()

    def send(self, value: Any) -> Any:
        return self._driver().send(value)

    def throw(self, *args: Any) -> Any:
        return self._driver().throw(*args)


def _decode_old(event: pb.VariableEvent) -> Any:
    return decode(event.old_value) if event.HasField("old_value") else None


def _milliseconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(f"{what} must be a non-negative number of milliseconds, got {value!r}", rule=what)
    return value / 1000.0


class WatchMethods:
    """Mixed into SessionContext; relies on its `channel`, `_token` and `initialize`."""

    channel: grpc.aio.Channel
    session_id: str
    _token: str
    initialize: Callable[[], Any]
    _session_token: Callable[[str], str]

    def _init_watch(self) -> None:
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._watch_call = self.channel.unary_stream(
            f"/{SERVICE}/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )
        self._session_recovery = asyncio.Lock()

    def _watch_rpc(self) -> Callable[..., grpc.aio.UnaryStreamCall]:
        return self._watch_call

    @property
    def active_watches(self) -> tuple[Watch, ...]:
        """This client's open watches (the spec's best practice: cancel each when done)."""
        return tuple(self._watches)

    def watch_variable(
        self,
        name: str,
        include_initial: bool = True,
        filter_fn: Callable[[Any, Any], bool] | None = None,
        throttle_ms: float = 0,
    ) -> Watch:
        """Watches one variable (name or ID): its updates as VariableUpdates, from its current value on.

        `filter_fn(old, new)` drops updates it returns False for; `throttle_ms` emits at most one
        update per window, and always the latest (see docs/watch.md).
        """
        return self._watch([name], include_initial, filter_fn, False, throttle_ms, 0)

    def watch_variables(
        self,
        names: list[str],
        include_initial: bool = True,
        filter_fn: Callable[[str, Any, Any], bool] | None = None,
        throttle_ms: float = 0,
        debounce_ms: float = 0,
    ) -> Watch:
        """Watches several variables on one stream; a write of several of them (an atomic batch) arrives
        as consecutive updates with one revision. `filter_fn(name, old, new)`; throttle is per variable;
        `debounce_ms` holds changes until none has come for that long, then emits the latest of each."""
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise ValidationError(f"names must be a list of variable names or IDs, got {names!r}", rule="refs")
        return self._watch(list(names), include_initial, filter_fn, True, throttle_ms, debounce_ms)

    def _watch(
        self,
        refs: list[str],
        include_initial: bool,
        filter_fn: Callable[..., Any] | None,
        by_name: bool,
        throttle_ms: float,
        debounce_ms: float,
    ) -> Watch:
        self._session_token("watch")  # not initialized: refused now, like any call
        if not refs:
            raise ValidationError("watch_variables needs at least one variable", rule="refs")
        for ref in refs:
            check_ref(ref)
        if len(set(refs)) != len(refs):
            raise ValidationError(f"{refs} names a variable more than once", rule="duplicate_refs")
        if filter_fn is not None and not callable(filter_fn):
            raise ValidationError(f"filter_fn must be callable, got {filter_fn!r}", rule="filter_fn")
        stages: list[Stage] = []
        debounce = _milliseconds(debounce_ms, "debounce_ms")
        if debounce:
            stages.append(Debounce(debounce))
        throttle = _milliseconds(throttle_ms, "throttle_ms")
        if throttle:
            stages.append(Throttle(throttle))
        stream = WatchStream(self, refs, bool(include_initial))
        watch = Watch(stream, filter_fn=filter_fn, by_name=by_name, stages=stages, on_end=self._watches.discard)
        self._watches.add(watch)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # outside an event loop: the stream opens on first use
            return watch
        stream.start()
        return watch

    def cancel_watch(self, watch_task: asyncio.Task[Any] | Watch) -> None:
        """Cancels a watch: the task awaiting or iterating it, or the watch itself. The server's stream is released
        at once for a watch or a task awaiting one; a task iterating one releases it when cancelled."""
        if isinstance(watch_task, Watch):
            watch_task.close()
            return
        coro = watch_task.get_coro()
        if isinstance(coro, Watch):
            coro._finish()  # release the stream now, before the task even runs again
        watch_task.cancel()

    def _close_watches(self) -> None:
        for watch in list(self._watches):
            watch.close()

    async def _recover_session(self, stale_token: str) -> None:
        """Re-creates this session after the server lost it, once however many watches noticed."""
        async with self._session_recovery:
            if stale_token and self._token == stale_token:
                await self.initialize()
