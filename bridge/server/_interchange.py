"""The export and import half of BridgeService (see "export and import" in bridge.proto).

An export is one `Store.export_snapshot` (one state, one revision), streamed in chunks of
serialized items, so a session larger than one message leaves as a stream and writes made
meanwhile never show in it. An import validates each message's variables as it arrives (as a
registration would; plain arrays, sent as variables or as ExportedArrays batches, by the first
of each layout: `_plain_array_entry`; the client encodes the next message meanwhile), within
bounds, then applies them in one transaction, where existing variables are written as writes are; a failure of any
(atomic) or a dry run aborts that transaction, so what is answered is what was, or would have
been, done.
"""

from __future__ import annotations

import functools
import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .._proto import bridge_pb2 as pb
from ..codec import decode, encode, encode_map, map_into
from ..errors import (
    BridgeError,
    LimitExceededError,
    ValidationError,
    VariableNotFoundError,
    VariableTypeError,
)
from ..interchange import MERGE_STRATEGIES
from ..interchange._wire import FramedMessage, Layout, array_runs, fast_varint, prefix
from ..limits import check_count, check_name
from ..store import OptimizationRecord, SessionSnapshot, StoredValue, Transaction, TrialRecord, VariableRecord
from ..types import TYPES
from ..types._patterns import compile_pattern
from ._dependencies import DEPENDENCY_TYPES, _edge_metadata
from ._handlers import MAX_ERROR_MESSAGE, ParsedStream
from ._optimization import OptimizationServicer
from ._sessions import Ctx
from ._values import array_head, coerce_wire, decode_metadata

log = logging.getLogger("dspex.server")

APPLIED = ("created", "replaced", "merged")

_RESPONSE = pb.ExportVariablesResponse.DESCRIPTOR.fields_by_name
_HEADER, _VARIABLES, _VERSIONS, _RUNS, _ARRAYS = (
    _RESPONSE[f].number for f in ("header", "variables", "versions", "runs", "arrays")
)
_SPEC_VALUE = pb.VariableSpec.DESCRIPTOR.fields_by_name["initial_value"].number
_ARRAY_VALUE = pb.Value.DESCRIPTOR.fields_by_name["array_value"].number
_ARRAY_DATA = pb.NDArray.DESCRIPTOR.fields_by_name["data"].number
_VARIABLE_SPEC = pb.ExportedVariable.DESCRIPTOR.fields_by_name["spec"].number
_VERSION_TAG = fast_varint(pb.ExportedVariable.DESCRIPTOR.fields_by_name["version"].number << 3)  # a varint field
#: Latest time a Timestamp may name (9999-12-31T23:59:59Z), as protobuf's well-known type allows.
_MAX_SECONDS = 253_402_300_799


def _micro_timestamp(seconds: float, target: Any) -> None:
    """Sets a Timestamp to `seconds` rounded to the microsecond: what an ISO time in an export keeps,
    so that a time read back from one (micros / 1e6) is exported again as the same microsecond."""
    target.FromMicroseconds(round(seconds * 1e6))


def _value_parts(record: VariableRecord) -> tuple[list[bytes | memoryview], int]:
    """A stored value's serialized wire Value, its array bytes framed in rather than copied into a message."""
    head, data = record.value
    if data is None:
        return [head], len(head)
    inner = prefix(_ARRAY_DATA, len(data))
    outer = prefix(_ARRAY_VALUE, len(inner) + len(data))
    return [head, outer, inner, data], len(head) + len(outer) + len(inner) + len(data)


class _Chunks:
    """Serialized items gathered into stream messages of about `limit` bytes (a bigger item goes alone),
    and plain array variables into a message's ExportedArrays batches, which follow its variables."""

    def __init__(self, context: Ctx, limit: int) -> None:
        self.context = context
        self.limit = limit
        self.message = FramedMessage(_ARRAYS)

    async def add(self, field_number: int, parts: list[bytes | memoryview], length: int | None = None) -> None:
        length = sum(len(p) for p in parts) if length is None else length
        message = self.message
        if message.size and (message.size + length > self.limit or (message.batches and field_number == _VARIABLES)):
            await self.flush()  # full, or a variable after this message's batches: it starts the next
        self.message.add(field_number, parts, length)

    async def add_array(self, layout: Layout, record: VariableRecord) -> None:
        data = record.value.data
        assert data is not None
        if self.message.size and self.message.size + len(data) > self.limit:
            await self.flush()
        self.message.add_array(layout, data, record.name, record.version)

    async def flush(self) -> None:
        if self.message.size:
            await self.context.write(self.message.take())


class _Entry:
    """One variable of an import, validated on its own as it arrives (before the session is looked at)."""

    __slots__ = ("error", "fields", "history", "kinds", "name", "value", "version")

    def __init__(
        self,
        name: str,
        version: int,
        value: pb.Value | None,
        fields: dict[str, Any] | None,
        kinds: dict[str, tuple[str, tuple[tuple[str, str], ...]]],
        error: BridgeError | None,
    ) -> None:
        self.name = name
        self.version = version or 1
        #: The value as sent, or None when it was stored unchanged (`wire_value` rebuilds it then).
        self.value = value
        #: What a registration would store (`_prepare_spec`), or None when `error` is set.
        self.fields = fields
        #: Earlier versions, oldest first: (version, stored value, updated_at, updated_by, metadata, its bytes).
        self.history: deque[tuple[Any, ...]] = deque()
        #: Dependency name -> (type, metadata items) for its typed edges.
        self.kinds = kinds
        self.error = error

    def wire_value(self) -> pb.Value:
        """The imported value as a write of an existing variable takes it."""
        if self.value is not None:
            return self.value
        assert self.fields is not None
        return self.fields["value"].to_pb()


#: The typed edges of an entry without dependencies (only ever read).
_NO_KINDS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}


class _Template(NamedTuple):
    """A plain array variable that `_entry` validated and stored unchanged: the others like it are
    stored as it was (see `_plain_array_entry`)."""

    fields: dict[str, Any]
    head: bytes
    nbytes: int


#: Not yet in an import's templates (None there means: this layout makes none).
_UNSEEN = _Template({}, b"", -1)


def _template(entry: _Entry, layout: Layout, data: bytes) -> _Template | None:
    """The template `entry` (of that layout and array bytes) makes for the plain arrays like it, or None."""
    fields = entry.fields
    if fields is None or not TYPES[fields["type"]].coerces_arrays_by_shape(fields["constraints"]):
        return None
    stored = fields["value"]
    if stored.head != array_head(*layout[1:]) or stored.data != data:
        return None  # coerced into another array
    return _Template(fields, stored.head, len(data))


def _plain_layout(layouts: dict[tuple[str, bytes], Layout], record: VariableRecord) -> Layout | None:
    """The layout of a variable that can travel in an ExportedArrays batch (an array, and nothing but its
    name, type and version), else None; `layouts` keeps those read from stored heads."""
    head, data = record.value
    if data is None or record.constraints or record.metadata or record.access_rules or record.dependencies:
        return None
    key = (record.type, head)
    layout = layouts.get(key)
    if layout is None:
        array = pb.Value.FromString(head).array_value
        layout = layouts[key] = (record.type, array.dtype, tuple(array.shape), array.framework)
    return layout


def _array_variable(batch: pb.ExportedArrays, name: str, version: int, data: bytes) -> pb.ExportedVariable:
    """The ExportedVariable one variable of an ExportedArrays batch stands for."""
    array = pb.NDArray(dtype=batch.dtype, shape=batch.shape, framework=batch.framework, data=data)
    spec = pb.VariableSpec(name=name, type=batch.type, initial_value=pb.Value(array_value=array))
    return pb.ExportedVariable(spec=spec, version=version)


#: A created variable's dependencies (IDs) and typed edges; most have none.
_Edges = tuple[tuple[str, ...], tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]]
_NO_EDGES: _Edges = ((), ())


class _Outcome(NamedTuple):
    outcome: str
    reason: str
    version: int = 0


class _Aborted(Exception):
    """Leaves an import's transaction without committing (a dry run, or an atomic import that failed)."""

    def __init__(self, outcomes: dict[str, _Outcome]) -> None:
        super().__init__("import aborted")
        self.outcomes = outcomes


class InterchangeServicer(OptimizationServicer):
    """ExportVariables and ImportVariables (see bridge.proto)."""

    # ------------------------------------------------------------ export

    def _selector(self, pattern: str) -> Callable[[str], bool] | None:
        if not pattern:
            return None
        if len(pattern) > self.limits.max_pattern_length:
            raise LimitExceededError(
                f"filter_pattern is {len(pattern)} characters; the limit is {self.limits.max_pattern_length}",
                rule="max_pattern_length",
            )
        try:
            compiled = compile_pattern(pattern)
        except ValueError as exc:
            raise ValidationError(f"filter_pattern: {exc}", rule="filter_pattern") from None
        return lambda name: compiled.fullmatch(name) is not None

    async def ExportVariables(self, request: pb.ExportVariablesRequest, context: Ctx) -> None:
        session_id = await self._authenticate(request, context)
        select = self._selector(request.filter_pattern)
        snap = await self.store.export_snapshot(session_id, select, request.include_history)
        header = pb.ExportHeader(
            session_id=session_id,
            revision=snap.revision,
            variable_count=len(snap.variables),
            version_count=sum(len(v) for v in snap.history.values()),
            run_count=len(snap.runs),
        )
        _micro_timestamp(self.clock(), header.exported_at)
        chunks = _Chunks(context, self.limits.max_export_chunk_bytes)
        await chunks.add(_HEADER, [header.SerializeToString()])
        layouts: dict[tuple[str, bytes], Layout] = {}
        plain = functools.partial(_plain_layout, layouts) if request.array_batches else lambda record: None
        for layout, records in array_runs(snap.variables, plain):
            for record in records:
                if layout is not None:
                    await chunks.add_array(layout, record)
                else:
                    await chunks.add(_VARIABLES, *self._exported_variable(record, snap, request.include_dependencies))
        for record in snap.variables:
            for version in snap.history.get(record.id, ()):
                await chunks.add(_VERSIONS, [self._exported_version(version)])
        for run in snap.runs:
            await self._add_run(chunks, run, snap.trials[run.id])
        await chunks.flush()

    def _exported_variable(
        self, record: VariableRecord, snap: SessionSnapshot, include_dependencies: bool
    ) -> tuple[list[bytes | memoryview], int]:
        """A serialized ExportedVariable, and its length."""
        spec = pb.VariableSpec(name=record.name, type=record.type)
        if record.constraints:  # most have none, nor metadata, nor dependencies: their fields are not touched
            map_into(spec.constraints, record.constraints, self.limits)
        if record.metadata:
            map_into(spec.metadata, record.metadata, self.limits)
        if include_dependencies and record.dependencies:
            spec.dependencies.extend([snap.names[d] for d in record.dependencies])
        for rule in record.access_rules:
            spec.access_rules.add(
                session_pattern=rule.session_pattern, permissions=rule.permissions, conditions=dict(rule.conditions)
            )
        value, value_length = _value_parts(record)
        head = spec.SerializeToString()
        value_prefix = prefix(_SPEC_VALUE, value_length)
        spec_length = len(head) + len(value_prefix) + value_length
        spec_prefix = prefix(_VARIABLE_SPEC, spec_length)
        tail = _VERSION_TAG + fast_varint(record.version)
        if include_dependencies and record.dependency_kinds:
            kinds = pb.ExportedVariable()
            for target, kind, metadata in record.dependency_kinds:
                kinds.dependency_kinds.add(name=snap.names[target], dependency_type=kind, metadata=dict(metadata))
            tail += kinds.SerializeToString()
        return [spec_prefix, head, value_prefix, *value, tail], len(spec_prefix) + spec_length + len(tail)

    def _exported_version(self, record: VariableRecord) -> bytes:
        version = pb.ExportedVersion(name=record.name, version=record.version, updated_by=record.updated_by)
        _micro_timestamp(record.updated_at, version.updated_at)
        map_into(version.metadata, record.last_update_metadata, self.limits)
        version.value.MergeFrom(record.value.to_pb())
        return version.SerializeToString()

    async def _add_run(self, chunks: _Chunks, run: OptimizationRecord, trials: list[TrialRecord]) -> None:
        """A run and its trials; split into items of about a chunk each, so no message outgrows the limit."""
        item = pb.ExportedRun(run=self._status(run))
        for trial in trials:
            entry = item.trials.add(
                optimization_id=trial.optimization_id,
                iteration=trial.iteration,
                state=trial.state,
                error=trial.error,
                kind=trial.kind,
                evaluation=trial.evaluation,
            )
            _micro_timestamp(trial.timestamp, entry.timestamp)
            map_into(entry.candidate, trial.candidate, self.limits)
            map_into(entry.metrics, trial.metrics, self.limits)
            if trial.score is not None:
                entry.score = trial.score
            if item.ByteSize() >= self.limits.max_export_chunk_bytes:
                await chunks.add(_RUNS, [item.SerializeToString()])
                item = pb.ExportedRun(run=pb.OptimizationStatus(optimization_id=run.id))
        if item.trials or item.run.exists:
            await chunks.add(_RUNS, [item.SerializeToString()])

    # ------------------------------------------------------------ import

    async def ImportVariables(self, requests: ParsedStream, context: Ctx) -> pb.ImportVariablesResponse:
        first = await anext(requests, None)
        if first is None:
            raise ValidationError("an import stream needs at least its first message (the options)", rule="import")
        session_id = await self._authenticate(first, context)
        options = first.options
        if options.merge_strategy not in MERGE_STRATEGIES:
            raise ValidationError(
                f"merge_strategy must be one of {', '.join(MERGE_STRATEGIES)}; got {options.merge_strategy[:40]!r}",
                rule="merge_strategy",
            )
        entries = await self._read_import(first, requests)
        outcomes = await self._apply_import(session_id, entries, options)
        response = pb.ImportVariablesResponse()
        for entry in entries:
            outcome = outcomes[entry.name]
            response.results.add(
                name=entry.name, outcome=outcome.outcome, reason=outcome.reason, version=outcome.version
            )
            if outcome.outcome in APPLIED:
                response.imported += 1
            elif outcome.outcome == "skipped":
                response.skipped += 1
            elif outcome.outcome == "failed":
                response.errors += 1
        log.info(
            "variables imported",
            extra={
                "session": session_id,
                "imported": response.imported,
                "skipped": response.skipped,
                "errors": response.errors,
                "dry_run": options.dry_run,
            },
        )
        return response

    async def _read_import(self, first: pb.ImportVariablesRequest, requests: ParsedStream) -> list[_Entry]:
        """Every variable of the stream, validated message by message as they arrive (the client encodes the
        next one meanwhile), within the limits, each name once, each version after its variable."""
        limits = self.limits
        options = first.options
        entries: dict[str, _Entry] = {}
        templates: dict[Layout, _Template | None] = {}
        version_count = 0
        request: pb.ImportVariablesRequest | None = first
        while request is not None:
            if request is not first and request.HasField("options"):
                raise ValidationError("only the first message of an import carries options", rule="import")
            if requests.received > limits.max_import_bytes:
                raise LimitExceededError(
                    f"the import stream exceeds {limits.max_import_bytes} bytes", rule="max_import_bytes"
                )
            # counted before any is validated: a message of a million names is refused, not built first
            count = len(entries) + len(request.variables) + sum(len(batch.names) for batch in request.arrays)
            check_count(count, limits.max_variables_per_session, "variables in one import", "max_variables_per_session")
            if count > options.variable_count:
                raise ValidationError(
                    f"the import stream carries more variables than the {options.variable_count} it announced",
                    rule="import",
                )
            arrived = [self._batched_entry(item, templates) for item in request.variables]
            for batch in request.arrays:
                arrived += self._array_entries(batch, templates)
            for entry in arrived:
                if entry.name in entries:
                    raise ValidationError(f"variable {entry.name[:128]!r} appears twice in the import", rule="import")
                entries[entry.name] = entry
            for version in request.versions:
                entry = entries.get(version.name)
                if entry is None:
                    raise ValidationError(
                        f"the import has a version of {version.name[:128]!r} before or without that variable",
                        rule="import",
                    )
                self._add_version(entry, version)
            version_count += len(request.versions)
            request = await anext(requests, None)
        if (len(entries), version_count) != (options.variable_count, options.version_count):
            raise ValidationError(
                f"incomplete import: it announced {options.variable_count} variables and {options.version_count} "
                f"versions, the stream carried {len(entries)} and {version_count}",
                rule="import",
            )
        return list(entries.values())

    def _entry(self, item: pb.ExportedVariable) -> _Entry:
        """Validates one variable as a registration would."""
        spec = item.spec
        try:
            fields = self._prepare_spec(spec)
            if item.version < 0:
                raise ValidationError(f"{fields['name']}: version must be positive, got {item.version}", rule="version")
            kinds = item.dependency_kinds
            edges = _dependency_kinds(fields, kinds) if kinds else _NO_KINDS
            return _Entry(fields["name"], item.version, spec.initial_value, fields, edges, None)
        except BridgeError as exc:
            return _Entry(spec.name, item.version, None, None, _NO_KINDS, exc)

    def _batched_entry(self, item: pb.ExportedVariable, templates: dict[Layout, _Template | None]) -> _Entry:
        """`_entry(item)`, for a batch of plain arrays without validating each one from scratch.

        A plain array variable (a name, a type and an array in its message; no constraints, metadata,
        rules or dependencies) differs from another of the same type, dtype, shape and framework only
        in its name and its elements. So the first one of each is validated by `_entry`; if it passed,
        stored unchanged, under a type that coerces arrays by shape alone (`coerces_arrays_by_shape`),
        the others are checked for what can differ (the name, the byte count, the version) and stored
        as it was. Anything else, or any doubt, goes through `_entry`.
        """
        spec = item.spec
        value = spec.initial_value
        if (
            spec.HasField("constraints")
            or spec.HasField("metadata")
            or spec.dependencies
            or spec.access_rules
            or item.dependency_kinds
            or not value.HasField("array_value")
        ):
            return self._entry(item)
        msg = value.array_value
        layout = (spec.type, msg.dtype, tuple(msg.shape), msg.framework)
        return self._plain_array_entry(layout, spec.name, item.version, msg.data, lambda: item, templates)

    def _array_entries(self, batch: pb.ExportedArrays, templates: dict[Layout, _Template | None]) -> list[_Entry]:
        """The variables of an ExportedArrays batch, each validated as the ExportedVariable it stands for
        (built for `_entry` only where `_plain_array_entry` needs one)."""
        names, versions, data = batch.names, batch.versions, batch.data
        count = len(names)
        if not count or len(versions) != count or len(data) % count:
            raise ValidationError(
                "an array batch needs at least one name, one version per name and its data in that many equal "
                f"parts; got {count} names, {len(versions)} versions and {len(data)} bytes",
                rule="import",
            )
        size = len(data) // count
        layout = (batch.type, batch.dtype, tuple(batch.shape), batch.framework)
        entries = []
        for i, (name, version) in enumerate(zip(names, versions, strict=True)):
            part = data[i * size : (i + 1) * size]
            item = functools.partial(_array_variable, batch, name, version, part)
            entries.append(self._plain_array_entry(layout, name, version, part, item, templates))
        return entries

    def _plain_array_entry(
        self,
        layout: Layout,
        name: str,
        version: int,
        data: bytes,
        item: Callable[[], pb.ExportedVariable],
        templates: dict[Layout, _Template | None],
    ) -> _Entry:
        """A plain array variable (`item()`, made only if needed), validated by the template of its layout."""
        template = templates.get(layout, _UNSEEN)
        if template is _UNSEEN:
            entry = self._entry(item())
            if entry.error is None:  # a failed one may have failed by its name: the next one can stand
                templates[layout] = _template(entry, layout, data)
            return entry
        if template is None or len(data) != template.nbytes or version < 0:
            return self._entry(item())
        try:
            name = check_name(name, limits=self.limits)
        except BridgeError:
            return self._entry(item())  # which fails it, as a registration would
        # the template's constraints (none, or those of its type) and empty dependencies are shared: records never
        # change theirs, as every version of a variable shares its constraints
        fields = {**template.fields, "name": name, "value": StoredValue(template.head, data)}
        return _Entry(name, version, None, fields, _NO_KINDS, None)

    def _add_version(self, entry: _Entry, v: pb.ExportedVersion) -> None:
        """Validates an earlier version as a write of its variable, and keeps it (within the retention);
        a bad one fails its variable."""
        fields, limits = entry.fields, self.limits
        if fields is None:
            return
        name = fields["name"]
        try:
            previous = entry.history[-1][0] if entry.history else 0
            if not previous < v.version < entry.version:
                raise ValidationError(
                    f"{name}: earlier version {v.version} is not between {previous} and the variable's version "
                    f"{entry.version} (versions go oldest first)",
                    variable=name,
                    rule="history",
                )
            seconds, nanos = v.updated_at.seconds, v.updated_at.nanos
            if not (0 <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
                raise ValidationError(f"{name}: version {v.version} has an invalid updated_at", rule="history")
            writer = check_name(v.updated_by, f"{name}: version {v.version}'s updated_by", limits)
            metadata = decode_metadata(v.metadata, name, limits)
            stored = coerce_wire(TYPES[fields["type"]], v.value, fields["constraints"], name, limits)
        except BridgeError as exc:
            entry.fields, entry.error, entry.history = None, exc, deque()
            return
        entry.history.append(
            (v.version, stored, v.updated_at.ToMicroseconds() / 1e6, writer, metadata, v.metadata.ByteSize())
        )
        if len(entry.history) >= limits.max_history_per_variable:  # the current version is kept too
            entry.history.popleft()

    async def _apply_import(
        self, session_id: str, entries: list[_Entry], options: pb.ImportOptions
    ) -> dict[str, _Outcome]:
        strategy = options.merge_strategy
        metadata = {"source": "import", "merge_strategy": strategy}
        metadata_bytes = encode_map(metadata).ByteSize()
        written = (metadata, metadata_bytes)
        order, cyclic = _dependency_order(entries)

        async def body(txn: Transaction) -> dict[str, _Outcome]:
            outcomes: dict[str, _Outcome] = {}
            held = [await txn.variable_count()]  # counted once: each creation adds one (and is checked)
            for entry in order:
                if entry.error is not None:
                    outcomes[entry.name] = _failed(entry.error)
                    continue
                try:
                    if entry.name in cyclic:
                        raise ValidationError(
                            f"{entry.name}: its dependencies form a cycle among {sorted(cyclic)[:10]}",
                            variable=entry.name,
                            rule="dependencies",
                        )
                    existing = await txn.get(entry.name)
                    if existing is None:
                        edges = await self._edges(txn, entry, outcomes) if entry.fields["dependencies"] else _NO_EDGES
                        outcomes[entry.name] = self._create(txn, session_id, entry, edges, written, held)
                    elif strategy == "keep":
                        outcomes[entry.name] = _Outcome("skipped", "exists; kept as it is (merge_strategy 'keep')")
                    else:
                        outcomes[entry.name] = self._overwrite(
                            txn, session_id, existing, entry, strategy, metadata, metadata_bytes
                        )
                except BridgeError as exc:
                    outcomes[entry.name] = _failed(exc)
            failures = sum(o.outcome == "failed" for o in outcomes.values())
            if options.dry_run or (options.atomic and failures):
                raise _Aborted(outcomes)
            return outcomes

        try:
            outcomes, _ = await self.store.transact(session_id, body)
        except _Aborted as aborted:
            outcomes = aborted.outcomes
        failures = sum(o.outcome == "failed" for o in outcomes.values())
        if options.atomic and failures:
            rolled_back = _Outcome(
                "not_applied", f"not applied: the atomic import was rolled back because {failures} variable(s) failed"
            )
            outcomes = {name: rolled_back if o.outcome in APPLIED else o for name, o in outcomes.items()}
        return outcomes

    async def _edges(self, txn: Transaction, entry: _Entry, outcomes: dict[str, _Outcome]) -> _Edges:
        """The IDs of the variable's dependencies, and its typed edges, as they are in `txn`."""
        assert entry.fields is not None
        dependencies = []
        kinds = []
        for dep in entry.fields["dependencies"]:
            target = await txn.get(dep)
            if target is None:
                why = "failed to import" if dep in outcomes else "is neither in this session nor in the import"
                raise VariableNotFoundError(
                    f"{entry.name}: dependency {dep!r} {why}", variable=entry.name, rule="dependencies"
                )
            dependencies.append(target.id)
            if dep in entry.kinds:
                kinds.append((target.id, *entry.kinds[dep]))
        return tuple(dict.fromkeys(dependencies)), tuple(kinds)

    def _create(
        self,
        txn: Transaction,
        session_id: str,
        entry: _Entry,
        edges: _Edges,
        written: tuple[dict[str, Any], int],
        held: list[int],
    ) -> _Outcome:
        """Creates the variable at its exported version with its history and `edges`; `written` is the import's
        write metadata and its wire size; `held` counts the session's variables."""
        fields = entry.fields
        assert fields is not None
        check_count(
            held[0] + 1, self.limits.max_variables_per_session, "variables in this session", "max_variables_per_session"
        )
        record = self._new_record(
            txn,
            session_id,
            session_id,
            fields,
            dependencies=edges[0],
            last_update_metadata=written[0],
            metadata_bytes=written[1],
            dependency_kinds=edges[1],
            version=entry.version,
        )
        history = [
            record._replace(
                version=v, value=stored, updated_at=at, updated_by=writer, last_update_metadata=md, metadata_bytes=mb
            )
            for v, stored, at, writer, md, mb in entry.history
        ]
        txn.restore(record, history)
        held[0] += 1
        earlier = f" with {len(history)} earlier version(s)" if history else ""
        return _Outcome("created", f"created at version {entry.version}{earlier}", entry.version)

    def _overwrite(
        self,
        txn: Transaction,
        session_id: str,
        existing: VariableRecord,
        entry: _Entry,
        strategy: str,
        metadata: dict[str, Any],
        metadata_bytes: int,
    ) -> _Outcome:
        fields = entry.fields
        assert fields is not None
        if existing.type != fields["type"]:
            raise VariableTypeError(
                f"{entry.name}: the session's variable is a {existing.type}, the import's a {fields['type']}",
                variable=entry.name,
                rule="import_type",
            )
        value = entry.wire_value()
        outcome = "replaced"
        if strategy == "merge":
            if existing.constraints != fields["constraints"]:
                raise ValidationError(
                    f"{entry.name}: constraints differ (the session's {_short(existing.constraints)}, "
                    f"the import's {_short(fields['constraints'])}); merge needs them equal",
                    variable=entry.name,
                    rule="merge_constraints",
                )
            if existing.type == "dict":
                current = decode(existing.value.to_pb(), native=False)
                imported = decode(fields["value"].to_pb(), native=False)
                if isinstance(current, dict) and isinstance(imported, dict):
                    value = encode({**current, **imported}, self.limits)
                    outcome = "merged"
        make = self._writer(value, session_id, metadata, metadata_bytes)
        updated = make(existing, txn.revision, txn.now)
        txn.put(updated)
        how = "merged key-wise into" if outcome == "merged" else "replaced"
        return _Outcome(outcome, f"{how} the existing variable: version {updated.version}", updated.version)


def _dependency_kinds(
    fields: dict[str, Any], kinds: Iterable[pb.ExportedDependency]
) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """The typed edges of an imported variable, each checked as AddDependency checks one."""
    name = fields["name"]
    out = {}
    for kind in kinds:
        if kind.name not in fields["dependencies"]:
            raise ValidationError(
                f"{name}: a dependency type is given for {kind.name[:128]!r}, which is not among its dependencies",
                variable=name,
                rule="dependencies",
            )
        type_ = kind.dependency_type or "data"
        if type_ not in DEPENDENCY_TYPES:
            raise ValidationError(
                f"{name}: dependency_type must be one of {list(DEPENDENCY_TYPES)}, got {type_[:40]!r}",
                variable=name,
                rule="dependency_type",
            )
        metadata = _edge_metadata(dict(kind.metadata), name)
        if type_ != "data" or metadata:  # a plain data edge is stored as such
            out[kind.name] = (type_, metadata)
    return out


def _failed(exc: BridgeError) -> _Outcome:
    message = exc.message
    return _Outcome(
        "failed", message if len(message) <= MAX_ERROR_MESSAGE else message[: MAX_ERROR_MESSAGE - 3] + "..."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _dependency_order(entries: list[_Entry]) -> tuple[list[_Entry], set[str]]:
    """Entries with every dependency inside the import before it (ties by name), and the names in cycles."""
    by_name = {e.name: e for e in entries}
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for entry in entries:
        deps = {d for d in (entry.fields or {}).get("dependencies", ()) if d in by_name}  # itself: a cycle
        waiting[entry.name] = len(deps)
        for dep in deps:
            dependents.setdefault(dep, []).append(entry.name)
    if not dependents:  # no edge inside the import: name order
        return [by_name[name] for name in sorted(by_name)], set()
    ready = [name for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(by_name[name])
        for dependent in dependents.get(name, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    cyclic = {name for name, n in waiting.items() if n > 0}
    order.extend(sorted((by_name[name] for name in cyclic), key=lambda e: e.name))
    return order, cyclic
