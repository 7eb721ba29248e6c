"""SessionContext: the spec's Python API over one session on a bridge server."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import grpc

from .._files import PemSource
from .._proto import bridge_pb2 as pb
from .._proto import bridge_pb2_grpc as pb_grpc
from ..codec import encode_into, map_into
from ..errors import AuthenticationError, VariableNotFoundError, VariableTypeError
from ..limits import channel_options, check_name
from ..types import infer_type
from ._arrays import framed_set_request, is_array, reply_value, split_get_response
from ._cache import MISSING, VariableCache
from ._convert import fill_spec, to_datetime, variable_info
from ._credentials import channel_credentials
from ._dependencies import DependencyMethods
from ._history import HistoryMethods
from ._interchange import InterchangeMethods
from ._invalidations import InvalidationStream
from ._optimization import OptimizationMethods
from ._permissions import PermissionMethods
from ._rpc import call, raise_translated
from ._stats import StatsMethods
from ._watch import WatchMethods

SERVICE = pb.DESCRIPTOR.services_by_name["BridgeService"].full_name

_SPEC_KEYS = {"name", "type", "initial_value", "constraints", "metadata", "dependencies", "access_rules"}


def connect(
    address: str = "127.0.0.1:50051",
    *,
    tls: bool | None = None,
    root_certificates: PemSource | None = None,
    certificate_chain: PemSource | None = None,
    private_key: PemSource | None = None,
    server_name_override: str | None = None,
    **options: Any,
) -> grpc.aio.Channel:
    """A channel sized for the bridge's largest messages (e.g. 64 MiB tensors); `options` are grpc channel options.

    Plaintext (for a server on 127.0.0.1) unless a TLS argument is given. Each certificate or
    key is PEM bytes or a path: `root_certificates`, the CA that signed the server's certificate
    (default with `tls=True`: the system's roots); `certificate_chain` and `private_key`, this
    client's certificate for mutual TLS; `server_name_override`, the name to check the server's
    certificate against instead of the host dialed. See docs/security.md.
    """
    credentials, tls_options = channel_credentials(
        tls, root_certificates, certificate_chain, private_key, server_name_override
    )
    opts = {**dict(channel_options()), **tls_options, **options}
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=list(opts.items()))
    return grpc.aio.secure_channel(address, credentials, options=list(opts.items()))


_SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})


class SessionContext(
    WatchMethods,
    OptimizationMethods,
    StatsMethods,
    InterchangeMethods,
    HistoryMethods,
    DependencyMethods,
    PermissionMethods,
):
    """Variables of one session. Safe to share across asyncio tasks.

    `await initialize()` (or `async with`) opens the session and receives its token;
    pass `token=` to resume a session another process opened, and `api_key=` to a server
    that requires one to create sessions (see docs/security.md). `close()` ends this client's
    watches and releases it; `cleanup()` ends the session on the server and deletes its
    variables (`cleanup_on_close=True` makes `close()` do that too).

    Reads go through a cache (`cache=`, a VariableCache; by default ttl 1 s, 1,000
    entries, lru) that the server keeps coherent by pushing invalidations: another
    client's write drops the entry as soon as it arrives, this client always reads its own
    writes, and nothing is cached while the invalidation stream is down. See docs/cache.md.
    """

    def __init__(
        self,
        session_id: str,
        channel: grpc.aio.Channel,
        *,
        token: str | None = None,
        timeout: float | None = None,
        cleanup_on_close: bool = False,
        metadata: Mapping[str, str] | None = None,
        cache: VariableCache | None = None,
        api_key: str | None = None,
    ) -> None:
        self.session_id = check_name(session_id, "session id")
        self._api_key = api_key or ""  # sent on every initialize: re-creating a lost session needs it too
        self.channel = channel
        self.token = token
        self.timeout = timeout
        self.cleanup_on_close = cleanup_on_close
        self.session_metadata = dict(metadata or {})
        self.ttl_seconds: float | None = None
        self.max_message_bytes: int | None = None
        self._stub = pb_grpc.BridgeServiceStub(channel)
        # Get and Set carry array bytes outside protobuf's copies (see _arrays).
        self._get = channel.unary_unary(
            f"/{SERVICE}/GetVariable",
            request_serializer=pb.GetVariableRequest.SerializeToString,
            response_deserializer=split_get_response,
        )
        self._set = channel.unary_unary(
            f"/{SERVICE}/SetVariable",
            request_serializer=pb.SetVariableRequest.SerializeToString,
            response_deserializer=None,  # set_variable returns nothing: the reply is not parsed
        )
        self._set_framed = channel.unary_unary(  # requests already framed as bytes around an array
            f"/{SERVICE}/SetVariable", response_deserializer=None
        )
        self._token = ""  # set by initialize(); sent in each request's session_token field
        self._cache = cache if cache is not None else VariableCache()
        self._invalidations = InvalidationStream(self, self._cache)
        self._init_stats()
        self._init_optimization()
        self._init_watch()

    @property
    def cache(self) -> VariableCache:
        """This client's VariableCache (e.g. to `subscribe_invalidation` or `invalidate_pattern`)."""
        return self._cache

    # ------------------------------------------------------------ lifecycle

    async def initialize(self) -> SessionContext:
        """Creates the session (or resumes it with `token`) and keeps the issued token."""
        request = pb.InitializeSessionRequest(
            session_id=self.session_id,
            resume_token=self.token or "",
            metadata=self.session_metadata,
            api_key=self._api_key,
        )
        response = await call(self._stub.InitializeSession, request, (), self.timeout, "initialize")
        self.token = response.token
        self.ttl_seconds = response.ttl_seconds
        self.max_message_bytes = response.max_message_bytes
        self._token = response.token
        self._invalidations.reopen()
        return self

    async def heartbeat(self) -> dict[str, Any]:
        """Keeps the session alive; returns its revision and expiry."""
        response = await self._call(self._stub.Heartbeat, pb.HeartbeatRequest(), "heartbeat")
        return {"revision": response.revision, "expires_at": to_datetime(response.expires_at)}

    async def cleanup(self) -> int:
        """Ends the session on the server; returns how many variables were deleted."""
        self._close_watches()
        self._invalidations.close()
        response = await self._call(self._stub.CleanupSession, pb.CleanupSessionRequest(), "cleanup")
        self._token = ""
        return response.variables_deleted

    async def close(self) -> None:
        """Ends this client's watches, cache and runs (state stopped, best values written), then releases it."""
        self._close_watches()
        self._invalidations.close()
        await self._stop_local_runs()
        if self.cleanup_on_close and self._token:
            await self.cleanup()
        self._token = ""

    async def __aenter__(self) -> SessionContext:
        return await self.initialize()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session_token(self, what: str) -> str:
        if not self._token:
            raise AuthenticationError(
                f"{what}: session {self.session_id!r} is not initialized; await initialize() first"
            )
        return self._token

    async def _call(self, rpc: Any, request: Any, what: str, name: str | None = None) -> Any:
        """Sends `request` as this session; the one place client calls are made and errors translated.

        `request` is a message (the token is filled in here) or bytes already framed with it.
        """
        if not isinstance(request, bytes):
            request.session_token = self._token or self._session_token(what)  # no call once initialized
        try:
            return await rpc(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise_translated(exc, request, what if name is None else f"{what}({name!r})")

    # ------------------------------------------------------------ retrieval

    async def get_variable(self, name: str, default: Any = None, bypass_cache: bool = False) -> Any:
        """The value of a variable (by name or ID), with its Python type.

        As the spec says, `default=None` means "no default": a missing variable then
        raises KeyError. Any other default is returned instead. A stored None (a
        nullable variable) is returned as None: a value, never mistaken for "missing".
        A cached value is returned without a call; `bypass_cache=True` always asks the server
        (and refreshes the cache with the answer).
        """
        cache = self._cache
        if not bypass_cache:
            value = cache.lookup(name)
            if value is not MISSING:
                return value
        request = pb.GetVariableRequest(ref=name)
        token = None
        if cache.ttl > 0:
            tracking = self._invalidations.tracking_id or await self._invalidations.current()
            if tracking is not None:
                request.tracking_id = tracking
                token = cache.read_token(name)
        started = time.perf_counter_ns()
        try:
            response, array_data = await self._call(self._get, request, "get_variable", name)
        except VariableNotFoundError:
            self._count_read(name, started)
            if default is None:
                raise
            return default
        self._count_read(name, started)
        value = reply_value(response, array_data)
        if token is not None and response.tracked:
            cache.store(response.variable_id, response.name, value, response.version, token)
        return value

    async def get_variables(
        self,
        names: list[str],
        defaults: dict[str, Any] | None = None,
        include_metadata: bool = False,
        include_stats: bool = False,
    ) -> dict[str, Any]:
        """Several variables in one round trip; missing names without a default raise KeyError.

        Plain values come from the cache where it holds them, and one call fetches the rest;
        `include_metadata` or `include_stats` asks the server for everything.
        """
        defaults = defaults or {}
        names = list(names)
        include_info = include_metadata or include_stats
        cache = self._cache
        cached: dict[str, Any] = {}
        if not include_info:
            for name in names:
                value = cache.lookup(name)
                if value is not MISSING:
                    cached[name] = value
        wanted = [name for name in dict.fromkeys(names) if name not in cached]
        if names and not wanted:
            return {name: cached[name] for name in names}
        request = pb.GetVariablesRequest(refs=wanted, include_info=include_info)
        tokens: dict[str, tuple[str, int, int]] = {}
        if cache.ttl > 0 and not include_info:
            tracking = self._invalidations.tracking_id or await self._invalidations.current()
            if tracking is not None:
                request.tracking_id = tracking
                tokens = {name: cache.read_token(name) for name in wanted}
        started = time.perf_counter_ns()
        response = await self._call(self._stub.GetVariables, request, "get_variables")
        for name in wanted:
            self._count_read(name, started)
        missing = [n for n in response.missing if n not in defaults]
        if missing:
            raise VariableNotFoundError(
                f"variables {missing} not found in session {self.session_id!r}", variable=",".join(missing)
            )
        result: dict[str, Any] = {}
        for name in names:
            if name in cached:
                result[name] = cached[name]
                continue
            found = response.found.get(name)
            if found is None:
                value: Any = defaults[name]
                result[name] = {"value": value, "found": False} if include_info else value
                continue
            if not include_info:
                value = result[name] = reply_value(found)
                if found.tracked and name in tokens:
                    cache.store(found.variable_id, found.name, value, found.version, tokens[name])
                continue
            info = variable_info(found.info, include_stats)
            info["value"] = reply_value(found)
            if include_stats:
                info["stats"].update(self._client_stats(info["id"], name))
            info["found"] = True
            result[name] = info
        return result

    async def list_variables(self, pattern: str | None = None, include_values: bool = False) -> list[dict[str, Any]]:
        """The session's variables (sorted by name), optionally filtered by a glob such as 'temp*'."""
        request = pb.ListVariablesRequest(pattern=pattern or "", include_values=include_values)
        response = await self._call(self._stub.ListVariables, request, "list_variables")
        return [variable_info(v, include_stats=True) for v in response.variables]

    # ------------------------------------------------------------ creation and updates

    async def register_variable(
        self,
        name: str,
        type: str,
        initial_value: Any,
        constraints: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        dependencies: list[str] | None = None,
        access_rules: list[dict[str, Any]] | None = None,
    ) -> str:
        """Creates a variable and returns its ID. Type and constraints are checked here first, then by the server."""
        check_name(name)
        request = pb.RegisterVariableRequest()
        fill_spec(request.spec, name, type, initial_value, constraints, metadata, dependencies, access_rules)
        response = await self._call(self._stub.RegisterVariable, request, "register_variable", name)
        return response.variable_id

    async def register_variables(self, variables: list[dict[str, Any]]) -> dict[str, str]:
        """Creates several variables atomically (all or none); returns name -> ID."""
        request = pb.RegisterVariablesRequest()
        for i, var in enumerate(variables):
            unknown = sorted(set(var) - _SPEC_KEYS)
            missing = sorted({"name", "type", "initial_value"} - set(var))
            if unknown or missing:
                raise VariableTypeError(
                    f"variables[{i}]: unknown keys {unknown}, missing keys {missing}", rule="variable_spec"
                )
            check_name(var["name"])
            fill_spec(
                request.specs.add(),
                var["name"],
                var["type"],
                var["initial_value"],
                var.get("constraints"),
                var.get("metadata"),
                var.get("dependencies"),
                var.get("access_rules"),
            )
        response = await self._call(self._stub.RegisterVariables, request, "register_variables")
        return {spec.name: response.variable_ids[spec.name] for spec in request.specs}

    async def set_variable(
        self,
        name: str,
        value: Any,
        metadata: dict[str, str] | None = None,
        create_if_missing: bool = False,
        type_hint: str | None = None,
    ) -> None:
        """Writes a variable; the server checks the value against its type and constraints."""
        if create_if_missing and not type_hint:
            type_hint = infer_type(value, name)
        request = pb.SetVariableRequest(ref=name)
        if create_if_missing:
            request.create_if_missing = True
            request.type_hint = type_hint or ""
        if metadata:
            map_into(request.metadata, metadata)
        started = time.perf_counter_ns()
        try:
            if type(value) not in _SCALAR_TYPES and is_array(value):  # scalars, the commonest values, skip the checks
                request.session_token = self._session_token("set_variable")  # framed as bytes: _call can't add it
                await self._call(self._set_framed, framed_set_request(request, value), "set_variable", name)
            else:
                encode_into(request.value, value)
                await self._call(self._set, request, "set_variable", name)
        finally:
            self._cache.written(name)  # even if it failed: it may have been applied
        self._count_write(name, started)

    async def update_variables(
        self, updates: dict[str, Any], metadata: dict[str, str] | None = None, atomic: bool = True
    ) -> dict[str, bool | str]:
        """Writes several variables; returns name -> True or the error message.

        atomic=True: all or nothing, as one revision. atomic=False: each on its own.
        """
        request = pb.UpdateVariablesRequest(atomic=atomic)
        for name, value in updates.items():
            entry = request.updates.add()
            entry.key = name
            encode_into(entry.value, value)
        map_into(request.metadata, metadata)
        started = time.perf_counter_ns()
        try:
            response = await self._call(self._stub.UpdateVariables, request, "update_variables")
        finally:
            for name in updates:
                self._cache.written(name)
        for name in updates:
            self._count_write(name, started)
        return {
            name: True if result.ok else result.error.message
            for name in updates
            for result in (response.results[name],)
        }

    async def delete_variable(self, name: str, force: bool = False) -> None:
        """Deletes one of this session's variables; refused while others depend on it, unless `force`
        (which removes their edges to it too)."""
        request = pb.DeleteVariableRequest(ref=name, force=force)
        try:
            await self._call(self._stub.DeleteVariable, request, "delete_variable", name)
        finally:
            self._cache.written(name)
