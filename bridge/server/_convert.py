"""Store records -> wire messages."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from .._framing import bytes_field_prefix
from .._proto import bridge_pb2 as pb
from ..codec import ARRAY_DATA_FIELD, encode_map
from ..limits import DEFAULT_LIMITS, Limits
from ..store import VariableRecord, VariableStatsRecord


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def variable_message(
    record: VariableRecord,
    stats: VariableStatsRecord | None = None,
    include_value: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> pb.Variable:
    msg = pb.Variable(
        id=record.id,
        name=record.name,
        session_id=record.session_id,
        type=record.type,
        constraints=encode_map(record.constraints, limits),
        metadata=encode_map(record.metadata, limits),
        dependencies=record.dependencies,
        access_rules=[
            pb.AccessRule(session_pattern=r.session_pattern, permissions=r.permissions, conditions=dict(r.conditions))
            for r in record.access_rules
        ],
        version=record.version,
        create_revision=record.create_revision,
        mod_revision=record.mod_revision,
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
        updated_by=record.updated_by,
        last_update_metadata=encode_map(record.last_update_metadata, limits),
    )
    if include_value:
        msg.value.CopyFrom(record.value.to_pb())
    if stats is not None:
        msg.stats.read_count = stats.read_count
        msg.stats.write_count = stats.write_count
        msg.stats.total_optimization_time_s = stats.optimization_time_s
    return msg


def _reply(record: VariableRecord, info: pb.Variable | None, tracked: bool | None) -> pb.GetVariableResponse:
    """A GetVariable reply without any array bytes (those travel as array_data).

    `tracked` is None unless the read carried a tracking ID: then the reply names the variable
    and says whether its writes will be sent on that Invalidations stream.
    """
    reply = pb.GetVariableResponse(version=record.version, mod_revision=record.mod_revision, info=info)
    if tracked is not None:
        reply.variable_id, reply.name, reply.tracked = record.id, record.name, tracked
    reply.value.MergeFromString(record.value.head)
    return reply


def fill_get_response(
    target: pb.GetVariableResponse, record: VariableRecord, info: pb.Variable | None, tracked: bool | None = None
) -> None:
    """Fills one entry of a batch reply (single reads use `get_reply`)."""
    target.MergeFrom(_reply(record, info, tracked))
    if record.value.data is not None:
        target.array_data = bytes(record.value.data)


def get_reply(
    record: VariableRecord, info: pb.Variable | None, tracked: bool | None = None
) -> pb.GetVariableResponse | bytes:
    """A GetVariable reply. For an array, bytes assembled around the stored array bytes, which
    lead as `array_data` instead of being copied into messages (see bridge._framing)."""
    reply = _reply(record, info, tracked)
    data = record.value.data
    if data is None:
        return reply
    return b"".join((bytes_field_prefix(ARRAY_DATA_FIELD, len(data)), data, reply.SerializeToString()))
