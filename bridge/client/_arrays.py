"""The client's side of moving arrays without copies: requests framed around the array's own
memory, and replies whose leading array bytes are read in place (see bridge._framing)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._framing import bytes_field_prefix, bytes_field_tag, split_leading_field
from .._proto import bridge_pb2 as pb
from ..codec import (
    ARRAY_DATA_FIELD,
    array_from_wire,
    array_header,
    array_payload,
    decode,
    is_torch_tensor,
    torch_to_numpy,
)
from ..errors import ValidationError

ARRAY_DATA_TAG = bytes_field_tag(ARRAY_DATA_FIELD)


def is_array(value: object) -> bool:
    return isinstance(value, np.ndarray) or is_torch_tensor(value)


def framed_set_request(request: pb.SetVariableRequest, value: Any) -> bytes:
    """The serialized request with `value`'s bytes leading as array_data: one copy, from the array itself."""
    arr, framework = (torch_to_numpy(value), "torch") if is_torch_tensor(value) else (value, "")
    array_header(request.value.array_value, arr, framework)
    payload = array_payload(arr)
    return b"".join((bytes_field_prefix(ARRAY_DATA_FIELD, len(payload)), payload, request.SerializeToString()))


def split_get_response(raw: bytes) -> tuple[pb.GetVariableResponse, memoryview | None]:
    array_data, rest = split_leading_field(raw, ARRAY_DATA_FIELD, ARRAY_DATA_TAG)
    response = pb.GetVariableResponse.FromString(rest)
    if array_data and response.array_data:
        raise ValidationError("the server sent array_data twice", rule="array_data")
    return response, array_data or None


def reply_value(response: pb.GetVariableResponse, array_data: memoryview | bytes | None = None) -> Any:
    """The Python value of a GetVariableResponse, wherever its array bytes travelled."""
    if array_data is None and response.array_data:
        array_data = response.array_data
    if array_data is not None and response.value.WhichOneof("kind") == "array_value":
        return array_from_wire(response.value.array_value, native=True, data=array_data)
    return decode(response.value)
