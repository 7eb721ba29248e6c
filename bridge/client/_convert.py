"""Wire messages -> the plain dicts SessionContext returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from .._proto import bridge_pb2 as pb
from ..codec import decode, decode_map, encode_into, map_into
from ..errors import ValidationError
from ..types import prepare


def to_datetime(ts: Timestamp) -> datetime:
    """An aware UTC datetime, truncated to the microsecond exactly (no float rounding)."""
    return ts.ToDatetime(tzinfo=UTC)


def variable_info(msg: pb.Variable, include_stats: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": msg.id,
        "name": msg.name,
        "type": msg.type,
        "version": msg.version,
        "constraints": decode_map(msg.constraints),
        "metadata": decode_map(msg.metadata),
        "dependencies": list(msg.dependencies),
        "access_rules": [
            {"session_pattern": r.session_pattern, "permissions": list(r.permissions), "conditions": dict(r.conditions)}
            for r in msg.access_rules
        ],
        "session_id": msg.session_id,
        "create_revision": msg.create_revision,
        "mod_revision": msg.mod_revision,
        "created_at": to_datetime(msg.created_at),
        "updated_at": to_datetime(msg.updated_at),
        "updated_by": msg.updated_by,
        "last_update_metadata": decode_map(msg.last_update_metadata),
    }
    if msg.HasField("value"):
        info["value"] = decode(msg.value)
    if include_stats:
        info["stats"] = {
            "read_count": msg.stats.read_count,
            "write_count": msg.stats.write_count,
            "total_optimization_time_s": msg.stats.total_optimization_time_s,
        }
    return info


def access_rules(rules: Iterable[Mapping[str, Any]] | None) -> list[pb.AccessRule]:
    out = []
    for rule in rules or ():
        unknown = sorted(set(rule) - {"session_pattern", "permissions", "conditions"})
        if unknown:
            raise ValidationError(
                f"unknown access rule key(s) {unknown}; use session_pattern, permissions, conditions",
                rule="access_rules",
            )
        out.append(
            pb.AccessRule(
                session_pattern=rule.get("session_pattern", ""),
                permissions=list(rule.get("permissions", ())),
                conditions={str(k): str(v) for k, v in (rule.get("conditions") or {}).items()},
            )
        )
    return out


def fill_spec(
    target: pb.VariableSpec,
    name: str,
    type: str,
    initial_value: Any,
    constraints: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    dependencies: Iterable[str] | None = None,
    access_rules_: Iterable[Mapping[str, Any]] | None = None,
) -> None:
    """Checks a registration locally (early, clear errors) and writes its wire spec in place."""
    type_name, checked, _ = prepare(type, initial_value, constraints, name)
    target.name = name
    target.type = type_name
    encode_into(target.initial_value, initial_value)
    map_into(target.constraints, checked)
    map_into(target.metadata, metadata)
    target.dependencies.extend(dependencies or ())
    target.access_rules.extend(access_rules(access_rules_))
