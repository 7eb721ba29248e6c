"""An export stream -> the document, and a document -> the import stream (pure: no I/O).

The host sends a snapshot as protobuf items (see "export and import" in bridge.proto); these
turn them into the plain document `_document` describes, and back. Times are ISO 8601 in UTC
to the microsecond, which is exactly what the host keeps of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from .._proto import bridge_pb2 as pb
from ..codec import decode, decode_map, encode_into, map_into
from ..errors import BridgeError, ValidationError
from ..limits import DEFAULT_LIMITS
from ._document import FORMAT, FORMAT_VERSION

#: About how many bytes one message of an import stream carries (a bigger variable goes alone).
CHUNK_BYTES = DEFAULT_LIMITS.max_export_chunk_bytes


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
        for item in response.variables:
            var = self._variable(item)
            self.variables.append(var)
            self.by_name[var["name"]] = var
        for version in response.versions:
            self.by_name[version.name]["history"].append(
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
        var: dict[str, Any] = {
            "name": spec.name,
            "type": spec.type,
            "value": decode(spec.initial_value),
            "constraints": decode_map(spec.constraints),
            "metadata": decode_map(spec.metadata),
            "access_rules": [
                {
                    "session_pattern": r.session_pattern,
                    "permissions": list(r.permissions),
                    "conditions": dict(sorted(r.conditions.items())),
                }
                for r in spec.access_rules
            ],
        }
        if self.include_dependencies:
            var["dependencies"] = list(spec.dependencies)
        var["version"] = item.version
        if self.include_history:
            var["history"] = []
        return var

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
    }


def import_requests(
    document: dict[str, Any], merge_strategy: str, atomic: bool, dry_run: bool
) -> tuple[pb.ImportVariablesRequest, Iterator[pb.ImportVariablesRequest]]:
    """The first message of the import stream (its options) and an iterator over the rest.

    Encoding a value the wire cannot carry (an int beyond int64, say) raises, naming the variable.
    """
    variables = document["variables"]
    options = pb.ImportOptions(
        merge_strategy=merge_strategy,
        atomic=atomic,
        dry_run=dry_run,
        variable_count=len(variables),
        version_count=sum(len(var.get("history", ())) for var in variables),
    )
    return pb.ImportVariablesRequest(options=options), _chunks(variables)


def _chunks(variables: list[dict[str, Any]]) -> Iterator[pb.ImportVariablesRequest]:
    request, size = pb.ImportVariablesRequest(), 0
    for var in variables:
        name = var["name"]
        try:
            item = request.variables.add(version=var.get("version", 1))
            _fill_spec(item.spec, var)
            size += item.ByteSize()
            for old in var.get("history", ()):
                version = request.versions.add(name=name, version=old["version"], updated_by=old["updated_by"])
                encode_into(version.value, old["value"])
                map_into(version.metadata, old["metadata"])
                _timestamp(old["updated_at"], version.updated_at)
                size += version.ByteSize()
        except BridgeError as exc:
            raise type(exc)(f"{name}: {exc.message}", **{**exc.details, "variable": name}) from None
        if size >= CHUNK_BYTES:
            yield request
            request, size = pb.ImportVariablesRequest(), 0
    if request.variables:
        yield request


def _fill_spec(spec: pb.VariableSpec, var: dict[str, Any]) -> None:
    spec.name = var["name"]
    spec.type = var["type"]
    encode_into(spec.initial_value, var["value"])
    map_into(spec.constraints, var.get("constraints"))
    map_into(spec.metadata, var.get("metadata"))
    spec.dependencies.extend(var.get("dependencies", ()))
    for rule in var.get("access_rules", ()):
        spec.access_rules.add(
            session_pattern=rule.get("session_pattern", ""),
            permissions=list(rule.get("permissions", ())),
            conditions={str(k): str(v) for k, v in (rule.get("conditions") or {}).items()},
        )
