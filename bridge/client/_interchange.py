"""SessionContext's export and import: the host takes and applies snapshots, this client owns the file formats.

`bridge.interchange` (and with it yaml, and pyarrow for parquet) is imported on the first
call, so that `import bridge` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from .._proto import bridge_pb2 as pb
from ..errors import BridgeError, ValidationError
from ._cache import VariableCache
from ._rpc import call

IMPORT_METHOD = f"/{pb.DESCRIPTOR.services_by_name['BridgeService'].full_name}/ImportVariables"


class InterchangeMethods:
    """Mixed into SessionContext; relies on its `_call`, `_stub` and `_cache` (an import is this client's write)."""

    _stub: Any
    _call: Callable[..., Any]
    _cache: VariableCache
    channel: grpc.aio.Channel
    timeout: float | None
    #: Whether the host reads ExportedArrays in an import; None until the first import asks.
    _host_batches: bool | None = None

    async def export_variables(
        self,
        format: str = "json",
        include_history: bool = False,
        include_dependencies: bool = True,
        filter_pattern: str | None = None,
    ) -> bytes:
        """The session's variables (those whose names `filter_pattern`, an RE2 regex, matches in full) as bytes.

        One snapshot at one revision, taken by the server in one step: types, constraints,
        metadata, access rules, current versions and values exactly, the dependencies by name,
        and with `include_history` every retained earlier version and the optimization runs
        with their iterations. Formats: json, yaml, pickle, parquet (needs pyarrow); see
        docs/interchange.md.
        """
        from ..interchange import encode
        from ..interchange._formats import check_format
        from ..interchange._wire import ExportReader

        check_format(format)
        if format == "parquet":
            from ..interchange._parquet import _pyarrow

            _pyarrow()  # before the export, not after it
        if filter_pattern is not None and not isinstance(filter_pattern, str):
            raise ValidationError(
                f"filter_pattern must be a regex string or None, got {type(filter_pattern).__name__}",
                rule="filter_pattern",
            )
        request = pb.ExportVariablesRequest(
            filter_pattern=filter_pattern or "",
            include_history=include_history,
            include_dependencies=include_dependencies,
            array_batches=True,
        )
        reader = ExportReader(include_history, include_dependencies)
        stream = self._stub.ExportVariables

        async def read(request: pb.ExportVariablesRequest, timeout: float | None) -> None:
            async for response in stream(request, timeout=timeout):
                reader.add(response)

        await self._call(read, request, "export_variables")
        return encode(reader.document(), format)

    async def _host_reads_batches(self) -> bool:
        """Whether the host takes runs of plain arrays as ExportedArrays (an older host ignores them and would
        see an incomplete import): asked once, by Ping."""
        if self._host_batches is None:
            reply = await call(self._stub.Ping, pb.PingRequest(), (), self.timeout, "ping")
            self._host_batches = reply.import_array_batches
        return self._host_batches

    async def import_variables(
        self,
        data: bytes,
        format: str = "json",
        merge_strategy: str = "replace",
        dry_run: bool = False,
        *,
        atomic: bool = True,
        allow_pickle: bool = False,
    ) -> dict[str, Any]:
        """Applies an export; returns {'imported', 'skipped', 'errors', 'details'} (one detail per variable).

        The server validates every variable as a registration (new names) or a write (existing
        ones) would. `merge_strategy`: 'replace' writes the imported value as a new version,
        'keep' leaves an existing variable alone, 'merge' updates an existing dict key-wise
        (other types: as replace; its constraints must equal the import's). `atomic=True`: all
        or nothing, one revision; `atomic=False`: the valid ones. `dry_run=True` answers what
        the import would do and changes nothing. A pickle is refused unless `allow_pickle=True`
        (only for files you made: unpickling can run code); the server never unpickles.
        A corrupt, truncated or hostile file raises ValueError naming the problem.
        """
        from ..interchange import MERGE_STRATEGIES, check_document, decode
        from ..interchange._wire import import_requests, rebind_own_rules

        if merge_strategy not in MERGE_STRATEGIES:
            raise ValidationError(
                f"merge_strategy must be one of {', '.join(MERGE_STRATEGIES)}; got {merge_strategy!r}",
                rule="merge_strategy",
            )
        document = rebind_own_rules(check_document(decode(data, format, allow_pickle=allow_pickle)), self.session_id)
        batches = await self._host_reads_batches()
        first, rest = import_requests(document, merge_strategy, atomic, dry_run, batches)
        stream = self.channel.stream_unary(  # the messages come serialized (see _wire)
            IMPORT_METHOD, response_deserializer=pb.ImportVariablesResponse.FromString
        )
        # A value that cannot be encoded ends the stream early (any error: one escaping into gRPC's
        # request iterator would leave the call waiting for the rest).
        unsent: list[Exception] = []

        def requests() -> Iterator[bytes]:
            yield first.SerializeToString()  # with the token _call set
            try:
                yield from rest
            except Exception as exc:
                unsent.append(exc)

        async def send(first: pb.ImportVariablesRequest, timeout: float | None) -> pb.ImportVariablesResponse:
            return await stream(requests(), timeout=timeout)

        try:
            response = await self._call(send, first, "import_variables")
        except BridgeError:
            if unsent:  # the server refused the cut stream, as incomplete: the cause is here
                raise unsent[0] from None
            raise
        finally:
            if not dry_run:  # even if the call failed: it may have been applied
                for var in document["variables"]:
                    self._cache.written(var["name"])
        return {
            "imported": response.imported,
            "skipped": response.skipped,
            "errors": response.errors,
            "details": [
                {"name": r.name, "outcome": r.outcome, "reason": r.reason, "version": r.version or None}
                for r in response.results
            ],
        }
