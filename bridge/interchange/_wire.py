"""An export stream -> the document, and a document -> the import stream (pure: no I/O).

The host sends a snapshot as protobuf items (see "export and import" in bridge.proto); these
turn them into the plain document `_document` describes, and back. Times are ISO 8601 in UTC
to the microsecond, which is exactly what the host keeps of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from .._framing import varint
from .._proto import bridge_pb2 as pb
from ..codec import (
    array_from_wire,
    array_layout,
    decode,
    decode_map,
    encode,
    is_torch_tensor,
    map_into,
    to_native,
    torch_to_numpy,
)
from ..errors import BridgeError, ValidationError
from ..limits import DEFAULT_LIMITS
from ._document import FORMAT, FORMAT_VERSION
from ._portable import array_bytes

#: About how many bytes one message of an import stream carries (a bigger variable goes alone).
CHUNK_BYTES = DEFAULT_LIMITS.max_export_chunk_bytes
_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def fast_varint(n: int) -> bytes:
    """`_framing.varint`, without its loop for the lengths and versions most items have (below 2**21)."""
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    return varint(n)


def prefix(field_number: int, length: int) -> bytes:
    """`_framing.bytes_field_prefix`, faster: the tag and length of a length-delimited field."""
    return fast_varint(field_number << 3 | 2) + fast_varint(length)


def iso(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _timestamp(text: str, target: Timestamp) -> None:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    target.FromDatetime(moment)


class ExportReader:
    """Builds the document from an export stream's messages, in order; `document()` checks it is whole."""

    def __init__(self, include_history: bool, include_dependencies: bool) -> None:
        self.include_history = include_history
        self.include_dependencies = include_dependencies
        self.header: pb.ExportHeader | None = None
        self.variables: list[dict[str, Any]] = []
        self.by_name: dict[str, dict[str, Any]] = {}
        self.versions = 0
        self.runs: list[dict[str, Any]] = []

    def add(self, response: pb.ExportVariablesResponse) -> None:
        if response.HasField("header"):
            if self.header is not None:
                raise ValidationError("the export stream sent two headers", rule="export_stream")
            self.header = response.header
        elif self.header is None:
            raise ValidationError("the export stream did not start with its header", rule="export_stream")
        arrived = [self._variable(item) for item in response.variables]
        for batch in response.arrays:
            arrived += self._array_variables(batch)
        for var in arrived:
            self.variables.append(var)
            self.by_name[var["name"]] = var
        for version in response.versions:
            var = self.by_name.get(version.name)
            if var is None or "history" not in var:
                raise ValidationError("the export stream sent a version of no variable it sent", rule="export_stream")
            var["history"].append(
                {
                    "version": version.version,
                    "value": decode(version.value),
                    "updated_at": iso(version.updated_at),
                    "updated_by": version.updated_by,
                    "metadata": decode_map(version.metadata),
                }
            )
        self.versions += len(response.versions)
        for item in response.runs:
            if item.run.exists:
                self.runs.append(_run(item.run))
            elif not self.runs or self.runs[-1]["optimization_id"] != item.run.optimization_id:
                raise ValidationError("the export stream continued a run it had not started", rule="export_stream")
            self.runs[-1]["trials"].extend(_trial(t) for t in item.trials)

    def _variable(self, item: pb.ExportedVariable) -> dict[str, Any]:
        spec = item.spec
        value = spec.initial_value
        rules = spec.access_rules
        var: dict[str, Any] = {
            "name": spec.name,
            "type": spec.type,
            # an array straight from its message: most of a large export, and decode() only dispatches to it
            "value": array_from_wire(value.array_value) if value.HasField("array_value") else decode(value),
            # HasField and the emptiness tests skip the work (and the wrappers) most variables need none of
            "constraints": decode_map(spec.constraints) if spec.HasField("constraints") else {},
            "metadata": decode_map(spec.metadata) if spec.HasField("metadata") else {},
            "access_rules": [
                {
                    "session_pattern": r.session_pattern,
                    "permissions": list(r.permissions),
                    "conditions": dict(sorted(r.conditions.items())),
                }
                for r in rules
            ]
            if rules
            else [],
        }
        if self.include_dependencies:
            names = spec.dependencies
            var["dependencies"] = _dependencies(names, item.dependency_kinds) if names else []
        return self._completed(var, item.version)

    def _completed(self, var: dict[str, Any], version: int) -> dict[str, Any]:
        """A variable's entry with its version and (to be filled) history, after the fields before them: one
        key order for both forms, so both give the same file."""
        var["version"] = version
        if self.include_history:
            var["history"] = []
        return var

    def _array_variables(self, batch: pb.ExportedArrays) -> list[dict[str, Any]]:
        """The variables of an ExportedArrays batch, each array a view of the batch's bytes (as a variable's
        is of its message's)."""
        names, versions, data = batch.names, batch.versions, batch.data
        shape = tuple(batch.shape)
        dtype, nbytes = array_layout(batch.dtype, shape)
        if not names or len(versions) != len(names) or len(data) != nbytes * len(names):
            raise ValidationError(
                f"the export stream sent an array batch of {len(names)} names, {len(versions)} versions and "
                f"{len(data)} bytes, for arrays of {nbytes} bytes",
                rule="export_stream",
            )
        # Empty arrays are made one by one: their other dimensions may be too big for numpy with one more in front.
        try:
            block = np.frombuffer(data, dtype=dtype).reshape(len(names), *shape) if nbytes else None
            empty = np.frombuffer(b"", dtype=dtype).reshape(shape) if not nbytes else None
        except ValueError as exc:
            raise ValidationError(f"export stream: arrays of shape {shape}: {exc}", rule="export_stream") from None
        type_, framework = batch.type, batch.framework
        out = []
        for i, (name, version) in enumerate(zip(names, versions, strict=True)):
            array = block[i, ...] if empty is None else empty.view()  # `...`: a 0-d array stays an array
            var: dict[str, Any] = {
                "name": name,
                "type": type_,
                "value": to_native(array, framework),
                "constraints": {},
                "metadata": {},
                "access_rules": [],
            }
            if self.include_dependencies:
                var["dependencies"] = []
            out.append(self._completed(var, version))
        return out

    def document(self) -> dict[str, Any]:
        header = self.header
        if header is None:
            raise ValidationError("the export stream ended before its header", rule="export_stream")
        got = (len(self.variables), self.versions, len(self.runs))
        expected = (header.variable_count, header.version_count, header.run_count)
        if got != expected:
            raise ValidationError(
                f"the export stream ended early: {got} of {expected} variables, versions and runs",
                rule="export_stream",
            )
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "session_id": header.session_id,
            "revision": header.revision,
            "exported_at": iso(header.exported_at),
            "variables": self.variables,
        }
        if self.include_history:
            document["optimization_runs"] = self.runs
        return document


def _dependencies(names: Iterable[str], kinds: Sequence[pb.ExportedDependency]) -> list[Any]:
    """A variable's dependencies as the document has them: a name for a plain data edge, else
    {"name", "type", "metadata"}."""
    if not kinds:
        return list(names)
    typed = {k.name: k for k in kinds}
    return [
        name
        if name not in typed
        else {
            "name": name,
            "type": typed[name].dependency_type,
            "metadata": dict(sorted(typed[name].metadata.items())),
        }
        for name in names
    ]


def _run(status: pb.OptimizationStatus) -> dict[str, Any]:
    """A run as the document records it: what it was, how far it got and its best, with its iterations."""
    return {
        "optimization_id": status.optimization_id,
        "optimizer_type": status.optimizer_type,
        "variables": list(status.variable_names),
        "state": status.state,
        "config": decode_map(status.config),
        "direction": status.direction,
        "metric": status.metric,
        "max_iterations": status.max_iterations,
        "convergence_threshold": status.convergence_threshold,
        "seed": status.seed if status.has_seed else None,
        "iteration": status.iteration,
        "best_candidate": decode_map(status.best_candidate) if status.best_iteration else None,
        "best_score": status.best_score if status.HasField("best_score") else None,
        "best_metrics": decode_map(status.best_metrics),
        "best_iteration": status.best_iteration,
        "initial_values": decode_map(status.initial_values),
        "error": status.error,
        "started_at": iso(status.started_at),
        "last_update": iso(status.last_update),
        "elapsed_seconds": status.elapsed_seconds,
        "trials": [],
    }


def _trial(entry: pb.TrialEntry) -> dict[str, Any]:
    return {
        "iteration": entry.iteration,
        "candidate": decode_map(entry.candidate),
        "score": entry.score if entry.HasField("score") else None,
        "metrics": decode_map(entry.metrics),
        "state": entry.state,
        "error": entry.error,
        "timestamp": iso(entry.timestamp),
        **({"kind": "evaluation", "evaluation": entry.evaluation} if entry.kind == "evaluation" else {}),
    }


def rebind_own_rules(document: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The document with each rule naming the exporting session renamed to the importing one.

    Such a rule restricted the owner itself (a frozen configuration): imported as it was, it would
    grant the old owner access instead, so it is made to restrict the new owner the same way.
    """
    source = document.get("session_id")
    if not source or source == session_id:
        return document
    variables = []
    for var in document.get("variables", ()):
        rules = var.get("access_rules") or ()
        if any(rule.get("session_pattern") == source for rule in rules):
            renamed = [{**r, "session_pattern": session_id} if r.get("session_pattern") == source else r for r in rules]
            var = {**var, "access_rules": renamed}
        variables.append(var)
    return {**document, "variables": variables}


def import_requests(
    document: dict[str, Any], merge_strategy: str, atomic: bool, dry_run: bool, array_batches: bool = True
) -> tuple[pb.ImportVariablesRequest, Iterator[bytes]]:
    """The first message of the import stream (its options) and an iterator over the rest, serialized;
    with `array_batches` (for a host that reads them), runs of plain arrays as ExportedArrays batches.

    The rest are framed here rather than built as messages, so an array's bytes are copied once,
    into the message they travel in (see bridge._framing). Encoding a value the wire cannot carry
    (an int beyond int64, say) raises, naming the variable.
    """
    variables = document["variables"]
    options = pb.ImportOptions(
        merge_strategy=merge_strategy,
        atomic=atomic,
        dry_run=dry_run,
        variable_count=len(variables),
        version_count=sum(len(var.get("history", ())) for var in variables),
    )
    return pb.ImportVariablesRequest(options=options), _chunks(variables, _run_key if array_batches else _no_run)


_Parts = list[bytes | memoryview]
_REQUEST = pb.ImportVariablesRequest.DESCRIPTOR.fields_by_name
_VARIABLES, _VERSIONS, _ARRAYS = (_REQUEST[f].number for f in ("variables", "versions", "arrays"))
_ARRAYS_DATA = pb.ExportedArrays.DESCRIPTOR.fields_by_name["data"].number
#: Plain arrays of one layout in a row, at least this many, travel as ExportedArrays batches (fewer: as
#: variables, so that a mixed import is not cut into many messages: a message's batches follow its variables).
MIN_ARRAY_RUN = 16
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
#: A plain array's layout: (type, dtype, shape, framework).
Layout = tuple[str, str, tuple[int, ...], str]
_SPEC = pb.ExportedVariable.DESCRIPTOR.fields_by_name["spec"].number
_VERSION_TAG = varint(pb.ExportedVariable.DESCRIPTOR.fields_by_name["version"].number << 3)  # a varint field
_SPEC_VALUE = pb.VariableSpec.DESCRIPTOR.fields_by_name["initial_value"].number
_VERSION_VALUE = pb.ExportedVersion.DESCRIPTOR.fields_by_name["value"].number
_ARRAY_VALUE = pb.Value.DESCRIPTOR.fields_by_name["array_value"].number
_ARRAY_DATA = pb.NDArray.DESCRIPTOR.fields_by_name["data"].number


def _chunks(variables: list[dict[str, Any]], key: Callable[[dict[str, Any]], Hashable | None]) -> Iterator[bytes]:
    """The import messages after the first: runs of at least MIN_ARRAY_RUN plain arrays of one layout (`key`)
    as ExportedArrays batches, the other variables as ExportedVariable items, in the document's order."""
    message = FramedMessage(_ARRAYS)
    for batched, run in array_runs(variables, key):
        for var in run:
            name = var["name"]
            try:
                if batched is not None:
                    message.add_array(*_array_parts(var), name, var.get("version", 1))
                else:
                    if message.batches:  # a message's batches follow its variables: this one starts the next
                        yield message.take()
                    message.add(_VARIABLES, *_variable(var))
                for old in var.get("history", ()):
                    message.add(_VERSIONS, *_version(name, old))
            except BridgeError as exc:
                raise type(exc)(f"{name}: {exc.message}", **{**exc.details, "variable": name}) from None
            if message.size >= CHUNK_BYTES:
                yield message.take()
    if message.size:
        yield message.take()


def array_runs(items: Iterable[T], key: Callable[[T], K | None]) -> Iterator[tuple[K | None, list[T]]]:
    """`items` in order and in runs of one key: (the key, run) for at least MIN_ARRAY_RUN in a row of a key
    that is not None (plain arrays of one layout: to batch), (None, run) for the others."""
    for layout, run in itertools.groupby(items, key=key):
        items_ = list(run)
        yield layout if layout is not None and len(items_) >= MIN_ARRAY_RUN else None, items_


def _run_key(var: dict[str, Any]) -> Hashable | None:
    """What groups the variables that can travel in one ExportedArrays batch (an array and nothing but its
    name, type and version), read without converting the array; None for any other variable."""
    if var.get("constraints") or var.get("metadata") or var.get("access_rules") or var.get("dependencies"):
        return None
    value = var["value"]
    if isinstance(value, np.ndarray):
        return var["type"], value.dtype.str, value.shape, ""
    if is_torch_tensor(value):
        return var["type"], str(value.dtype), tuple(value.shape), "torch"
    return None


def _no_run(var: dict[str, Any]) -> None:
    """The run key of an import that sends no batches."""
    return None


def _array_parts(var: dict[str, Any]) -> tuple[Layout, bytes | memoryview]:
    """A plain array variable's layout and little-endian bytes, converted as it is framed (not ahead)."""
    value, framework = var["value"], ""
    if not isinstance(value, np.ndarray):
        value, framework = torch_to_numpy(value), "torch"
    dtype, payload = array_bytes(value)
    return (var["type"], dtype, value.shape, framework), payload


class FramedMessage:
    """One stream message being framed, an import's (here) or an export's (the server's): serialized items,
    then plain array variables in ExportedArrays batches (a new one whenever the layout changes) under
    `arrays_field`. A message's batches follow its variables: a variable after one starts the next message."""

    def __init__(self, arrays_field: int) -> None:
        self.arrays_field = arrays_field
        self.parts: _Parts = []
        #: About how many bytes the message holds.
        self.size = 0
        #: (layout, names, versions, array bytes) of each batch, in order; the last one may grow.
        self.batches: list[tuple[Layout, list[str], list[int], _Parts]] = []

    def add(self, field_number: int, item: _Parts, length: int) -> None:
        """A serialized item of `length` bytes, under `field_number`."""
        head = prefix(field_number, length)
        self.parts += (head, *item)
        self.size += len(head) + length

    def add_array(self, layout: Layout, payload: bytes | memoryview, name: str, version: int) -> None:
        if not self.batches or self.batches[-1][0] != layout:
            self.batches.append((layout, [], [], []))
        _, names, versions, payloads = self.batches[-1]
        names.append(name)
        versions.append(version)
        payloads.append(payload)
        self.size += len(payload) + len(name) + 2

    def take(self) -> bytes:
        """The message, serialized (the arrays' bytes copied once, into it); this one starts empty again."""
        parts = self.parts
        for (type_, dtype, shape, framework), names, versions, payloads in self.batches:
            head = pb.ExportedArrays(
                type=type_, dtype=dtype, shape=shape, framework=framework, names=names, versions=versions
            ).SerializeToString()
            data = sum(len(p) for p in payloads)
            data_prefix = prefix(_ARRAYS_DATA, data)
            parts += (prefix(self.arrays_field, len(head) + len(data_prefix) + data), head, data_prefix, *payloads)
        message = b"".join(parts)
        self.parts, self.size, self.batches = [], 0, []
        return message


def _value(value: Any) -> tuple[_Parts, int]:
    """A serialized wire Value; an array's bytes as a view of the array, framed in."""
    if isinstance(value, np.ndarray):
        return _array_value(value, "")
    if is_torch_tensor(value):
        return _array_value(torch_to_numpy(value), "torch")
    encoded = encode(value).SerializeToString()
    return [encoded], len(encoded)


def _array_value(arr: np.ndarray, framework: str) -> tuple[_Parts, int]:
    dtype, payload = array_bytes(arr)
    header = _array_header(dtype, arr.shape, framework)
    data_prefix = prefix(_ARRAY_DATA, len(payload))
    length = len(header) + len(data_prefix) + len(payload)
    outer = prefix(_ARRAY_VALUE, length)
    return [outer, header, data_prefix, payload], len(outer) + length


_HEADERS: dict[tuple[str, tuple[int, ...], str], bytes] = {}


def _array_header(dtype: str, shape: tuple[int, ...], framework: str) -> bytes:
    """A serialized NDArray without its data: looked up, since the arrays of an import share a few shapes."""
    key = (dtype, shape, framework)
    header = _HEADERS.get(key)
    if header is None:
        header = pb.NDArray(dtype=dtype, shape=shape, framework=framework).SerializeToString()
        if len(_HEADERS) < 1024:  # bounded, whatever the shapes
            _HEADERS[key] = header
    return header


def _variable(var: dict[str, Any]) -> tuple[_Parts, int]:
    """A serialized ExportedVariable."""
    spec = pb.VariableSpec(name=var["name"], type=var["type"])
    if var.get("constraints"):
        map_into(spec.constraints, var["constraints"])
    if var.get("metadata"):
        map_into(spec.metadata, var["metadata"])
    kinds = None  # the typed edges, which most variables have none of
    for dep in var.get("dependencies", ()):
        if isinstance(dep, str):
            spec.dependencies.append(dep)
            continue
        spec.dependencies.append(dep["name"])
        kind, metadata = dep.get("type", "data"), dep.get("metadata") or {}
        if kind != "data" or metadata:
            if kinds is None:
                kinds = pb.ExportedVariable()
            kinds.dependency_kinds.add(name=dep["name"], dependency_type=kind, metadata=metadata)
    for rule in var.get("access_rules", ()):
        spec.access_rules.add(
            session_pattern=rule.get("session_pattern", ""),
            permissions=list(rule.get("permissions", ())),
            conditions={str(k): str(v) for k, v in (rule.get("conditions") or {}).items()},
        )
    value, value_length = _value(var["value"])
    head = spec.SerializeToString()
    value_prefix = prefix(_SPEC_VALUE, value_length)
    spec_length = len(head) + len(value_prefix) + value_length
    spec_prefix = prefix(_SPEC, spec_length)
    tail = _VERSION_TAG + fast_varint(var.get("version", 1))
    if kinds is not None:
        tail += kinds.SerializeToString()
    return [spec_prefix, head, value_prefix, *value, tail], len(spec_prefix) + spec_length + len(tail)


def _version(name: str, old: dict[str, Any]) -> tuple[_Parts, int]:
    """A serialized ExportedVersion of variable `name`."""
    version = pb.ExportedVersion(name=name, version=old["version"], updated_by=old["updated_by"])
    map_into(version.metadata, old["metadata"])
    _timestamp(old["updated_at"], version.updated_at)
    value, value_length = _value(old["value"])
    head = version.SerializeToString()
    value_prefix = prefix(_VERSION_VALUE, value_length)
    return [head, value_prefix, *value], len(head) + len(value_prefix) + value_length
