"""The one place where RPCs meet gRPC: request parsing and error mapping for every method.

A `BridgeError` becomes its status code plus an `ErrorDetail` trailer (from the shared
table); a request that does not parse is INVALID_ARGUMENT; anything unexpected is logged
and answered INTERNAL with a reference, and the server keeps serving.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import DecodeError, Message

from .._framing import bytes_field_tag, split_leading_field
from .._proto import bridge_pb2 as pb
from ..codec import ARRAY_DATA_FIELD
from ..errors import ERROR_TRAILER_KEY, BridgeError, ValidationError

log = logging.getLogger("dspex.server")

SERVICE = pb.DESCRIPTOR.services_by_name["BridgeService"]


#: Error text rides in headers (status and trailer), which gRPC caps at 16 KiB together.
MAX_ERROR_MESSAGE = 2000


def _clip(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_detail(exc: BridgeError) -> pb.ErrorDetail:
    details = {k: _clip(v, 200) for k, v in exc.details.items()}
    return pb.ErrorDetail(kind=exc.kind, message=_clip(exc.message), details=details)


class SplitRequest(NamedTuple):
    """A request whose leading `array_data` bytes were sliced off rather than parsed (see bridge._framing).

    Requests without leading array bytes arrive as plain messages.
    """

    message: Message
    array_data: memoryview | None


#: A stored array is a view into its request's buffer; past this much else in that buffer, it is copied out.
_MAX_PINNED_REST = 64 * 1024

#: Requests whose array bytes may lead the message, by method, with the field that carries them.
SPLIT_FIELDS = {"SetVariable": ARRAY_DATA_FIELD}


def _parser(message_class: type[Message], split_field: int | None) -> Callable[[bytes], Any]:
    """The request parser of a method: protobuf's own, or one that slices leading array bytes off first."""
    if split_field is None:
        return message_class.FromString
    tag = bytes_field_tag(split_field)

    def parse(data: bytes) -> Any:
        if not data.startswith(tag):  # most requests: no leading array bytes
            return message_class.FromString(data)
        array_data, rest = split_leading_field(data, split_field, tag)
        message = message_class.FromString(rest)
        if not array_data:  # absent, or empty (which proto3 reads as unset)
            return message
        if len(rest) > _MAX_PINNED_REST:
            array_data = memoryview(bytes(array_data))  # don't let the stored view pin a large request
        return SplitRequest(message, array_data)

    return parse


def _serialize(response: Message | bytes) -> bytes:
    """GetVariable answers with a message, or with bytes it already framed around an array."""
    return response if isinstance(response, bytes) else response.SerializeToString()


#: Methods whose responses may be pre-framed bytes; the others serialize in C, with no Python call.
FRAMED_RESPONSES = {"GetVariable"}


def _parsed(name: str, parse: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return parse(data)
    except DecodeError as exc:
        raise ValidationError(f"{name}: the request could not be decoded ({exc})", rule="decode") from None


class ParsedStream:
    """A client stream's messages, each parsed as it arrives (a bad one fails the call where it is read).

    `received` counts the bytes of the messages read so far, as they came: a limit on a stream's
    size needs no `ByteSize()`, which walks each parsed message again.
    """

    def __init__(self, name: str, parse: Callable[[bytes], Any], stream: AsyncIterator[bytes]) -> None:
        self._name = name
        self._parse = parse
        self._stream = aiter(stream)
        self.received = 0

    def __aiter__(self) -> ParsedStream:
        return self

    async def __anext__(self) -> Any:
        data = await anext(self._stream)  # StopAsyncIteration ends this stream too
        self.received += len(data)
        return _parsed(self._name, self._parse, data)


def _guarded(
    name: str,
    parse: Callable[[bytes], Any],
    method: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    client_streaming: bool = False,
) -> Callable[..., Any]:
    """The handler of one method. Requests arrive as bytes and are parsed here, so that one that
    does not parse is refused like any other bad input rather than by gRPC's generic UNKNOWN.
    A client-streaming method gets an async iterator of parsed messages."""

    async def rpc(data: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = ParsedStream(name, parse, data) if client_streaming else _parsed(name, parse, data)
            return await method(request, context)
        except grpc.aio.AbortError:  # the method ended the call itself (a watch stream, at shutdown)
            raise
        except BridgeError as exc:
            log.info("rpc refused", extra={"rpc": name, "kind": exc.kind, "error": exc.message[:500]})
            detail = error_detail(exc)
            await context.abort(
                exc.code, detail.message, trailing_metadata=((ERROR_TRAILER_KEY, detail.SerializeToString()),)
            )
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("rpc failed", extra={"rpc": name, "ref": ref})
            await context.abort(grpc.StatusCode.INTERNAL, f"internal server error (ref {ref}); see the server log")

    rpc.__name__ = name
    return rpc


def method_handlers(servicer: object) -> dict[str, grpc.RpcMethodHandler]:
    """BridgeService's handlers by method name: each method of `servicer`, parsed and guarded by `_guarded`.

    A server-streaming method (Watch, ExportVariables) writes its messages itself with `context.write`,
    as messages or as bytes it framed (see server._watch._encode); a client-streaming one (ImportVariables)
    reads its messages from the iterator it is given. No method streams both ways.
    """
    handlers = {}
    for m in SERVICE.methods:
        parse = _parser(getattr(pb, m.input_type.name), SPLIT_FIELDS.get(m.name))
        rpc = _guarded(m.name, parse, getattr(servicer, m.name), m.client_streaming)
        if m.client_streaming:
            handlers[m.name] = grpc.stream_unary_rpc_method_handler(
                rpc, response_serializer=getattr(pb, m.output_type.name).SerializeToString
            )
            continue
        if m.server_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(rpc, response_serializer=_serialize)
            continue
        handlers[m.name] = grpc.unary_unary_rpc_method_handler(
            rpc,
            response_serializer=(
                _serialize if m.name in FRAMED_RESPONSES else getattr(pb, m.output_type.name).SerializeToString
            ),
        )
    return handlers
