"""The client protocol's frames, as bytes in and events out (sans-IO, in the way of h11).

A frame is a 4-byte big-endian payload length followed by that many bytes of
msgpack. Nothing here touches a socket: the server and both clients feed the
bytes they read into a decoder and act on the events it returns, so every rule
below is testable byte for byte.

Decoding rules (what the server answers is in parentheses):

- The length counts payload bytes only. A declared length above `max_frame`
  yields `FrameTooLarge` (a `too_large` reply with id null; the connection is
  closed once the requests read before it have been answered). The payload is
  not skipped: a length that large is far more often garbage or a
  desynchronised stream than a real request, and skipping would make the
  server wait for gigabytes that may never come. After `FrameTooLarge` the
  decoder is spent and ignores everything fed to it.
- A payload that is not one complete msgpack value yields `BadFrame` with id
  None (a `bad_request` reply, and the connection goes on: the length prefix
  still tells where the next frame starts).
- msgpack is unpacked strictly: str as str, bin as bytes, arrays as lists
  (never tuples), map keys only str or bytes, no ext types (the timestamp
  extension included), and container lengths bounded by the payload size, so a
  small frame cannot make the decoder allocate a huge array. Nesting is bounded
  by msgpack's own stack limit.
- `RequestDecoder` also checks the request shape: a map with an int `id`
  (bool is not an int here), a str `op`, and a map `args` (an absent `args`
  means no arguments; other fields are ignored so the protocol can grow).
  A frame that fails this yields `BadFrame` carrying the id when one could be
  read, else None (a `bad_request` reply with that id; the connection goes on).

Server-to-client frames are `{"id", "ok": true, "result"}`,
`{"id", "ok": false, "error": {"code", "message"}}`, stream events
`{"id", "event"}` and the end of a stream `{"id", "end": true}`, which carries an
`"error"` map when the stream failed. `parse_server_frame` reads them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, NoReturn, TypeVar

import msgpack

from swarmnode.errors import BadRequest, DecodeError, TooLarge

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""Largest payload, in bytes, a peer may declare. 16 MiB fits any value the node accepts."""

MAX_ERROR_MESSAGE = 1024
"""Bytes (UTF-8) of an error message the server sends at most. A longer one is cut, so an
error that quotes its input (a 5 MiB namespace name) cannot make a reply larger than the
request, nor exceed the frame limit."""

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
_MAX_ENCODABLE = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Frame:
    """One well-formed msgpack value read from the stream."""

    value: Any


class Request(NamedTuple):
    """A well-formed request frame. One is made per request: a named tuple, immutable like
    a frozen dataclass at half its cost to build."""

    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame whose payload is not valid msgpack or not a valid request; framing is intact."""

    id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """A declared length above the limit; the stream can no longer be trusted."""

    length: int
    limit: int


FrameEvent = Frame | BadFrame | FrameTooLarge
RequestEvent = Request | BadFrame | FrameTooLarge
_Event = TypeVar("_Event", Frame, Request)


def encode_frame(value: Any) -> bytes:
    """Pack one value as a frame; raises `TooLarge` past what 4 length bytes can say.

    Values msgpack cannot represent (sets, objects, ints beyond 64 bits) raise
    msgpack's `TypeError`/`ValueError`/`OverflowError`: the caller's bug, not the peer's.
    """
    payload = msgpack.packb(value, use_bin_type=True)
    if len(payload) > _MAX_ENCODABLE:
        raise TooLarge(f"frame payload of {len(payload)} bytes cannot be framed")
    return _HEADER.pack(len(payload)) + payload


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"ext type {code} is not allowed")


def unpack_payload(payload: bytes | memoryview) -> Any:
    """Unpack one payload with the strict rules above; raises `DecodeError` and nothing else."""
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_ext_len=0,
            ext_hook=_reject_ext,
        )
    except ValueError as exc:
        detail = str(exc) or "invalid structure"
        raise DecodeError(f"malformed msgpack ({type(exc).__name__}: {detail})") from exc


class _Decoder(Generic[_Event]):
    """Splits a byte stream into frames and turns each whole msgpack value into an event
    (`_event`, a subclass's); `feed` never raises on any input."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._spent = False

    @property
    def spent(self) -> bool:
        """True once framing was lost; the connection must be closed."""
        return self._spent

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame (a truncated frame at EOF)."""
        return len(self._buffer)

    @property
    def pending_frame(self) -> int:
        """Bytes (header included) the frame now arriving will hold once whole; 0 while no
        length has been read. What a server reserves against its buffering budget."""
        if self._spent or len(self._buffer) < HEADER_SIZE:
            return 0
        (length,) = _HEADER.unpack_from(self._buffer, 0)
        return HEADER_SIZE + length

    def _event(self, value: Any) -> _Event | BadFrame:
        """What one well-formed msgpack value read from the stream is."""
        raise NotImplementedError

    def feed(self, data: bytes) -> list[_Event | BadFrame | FrameTooLarge]:
        if self._spent:
            return []
        if not self._buffer and len(data) >= HEADER_SIZE:
            # The common read: exactly one whole frame, nothing held back. Unpacked from
            # `data` itself, without a copy into the buffer.
            (length,) = _HEADER.unpack_from(data, 0)
            if length <= self._max_frame and len(data) == HEADER_SIZE + length:
                try:
                    value = unpack_payload(memoryview(data)[HEADER_SIZE:])
                except DecodeError as exc:
                    return [BadFrame(None, str(exc))]
                return [self._event(value)]
        self._buffer += data
        events: list[_Event | BadFrame | FrameTooLarge] = []
        offset = 0
        while len(self._buffer) - offset >= HEADER_SIZE:
            (length,) = _HEADER.unpack_from(self._buffer, offset)
            if length > self._max_frame:
                events.append(FrameTooLarge(length, self._max_frame))
                self._spent = True
                self._buffer.clear()
                return events
            end = offset + HEADER_SIZE + length
            if len(self._buffer) < end:
                break
            # Unpacked in place: copying a 16 MiB payload out first would hold it twice.
            with memoryview(self._buffer) as view:
                try:
                    value = unpack_payload(view[offset + HEADER_SIZE : end])
                except DecodeError as exc:
                    events.append(BadFrame(None, str(exc)))
                else:
                    events.append(self._event(value))
            offset = end
        del self._buffer[:offset]
        return events


class FrameDecoder(_Decoder[Frame]):
    """What the clients feed: every well-formed msgpack value becomes a `Frame`."""

    def _event(self, value: Any) -> Frame:
        return Frame(value)


class RequestShapeError(DecodeError):
    """A decoded frame that is not a request; `id` is the request id when it could be read."""

    def __init__(self, request_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.id = request_id


def parse_request(value: Any) -> Request:
    """Check a decoded frame is a request; raises `RequestShapeError`, with the id if readable."""
    if not isinstance(value, dict):
        raise RequestShapeError(None, f"request must be a map, not {_kind(value)}")
    request_id = value.get("id")
    if type(request_id) is not int:
        raise RequestShapeError(None, f"request id must be an int, not {_kind(request_id)}")
    op = value.get("op")
    if not isinstance(op, str):
        raise RequestShapeError(request_id, f"request op must be a str, not {_kind(op)}")
    args = value.get("args", {})
    if not isinstance(args, dict):
        raise RequestShapeError(request_id, f"request args must be a map, not {_kind(args)}")
    return Request(request_id, op, args)


class RequestDecoder(_Decoder[Request]):
    """What the server feeds: frames become `Request` or `BadFrame`; `feed` never raises."""

    def _event(self, value: Any) -> Request | BadFrame:
        try:
            return parse_request(value)
        except RequestShapeError as exc:
            return BadFrame(exc.id, str(exc))


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


# Server-to-client frames.


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful reply; `result` is `{"stream": True}` when events follow."""

    id: int | None
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A failed request; id None means the error concerns the connection, not one request."""

    id: int | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    item: Any


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last frame of a stream; `error` is set when the stream failed rather than finished."""

    id: int
    error: ErrorReply | None = None


ServerFrame = Reply | ErrorReply | StreamEvent | StreamEnd


def encode_request(request_id: int, op: str, args: dict[str, Any]) -> bytes:
    """A request frame, refused locally (`BadRequest`) if the node could not read it.

    The node decodes strictly (str or bytes map keys, no ext types) and answers
    an unreadable frame without its id, which would leave the caller waiting;
    checking here turns that into an error for this one call.
    """
    try:
        frame = encode_frame({"id": request_id, "op": op, "args": args})
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"{op}: arguments cannot be encoded: {exc}") from None
    try:
        unpack_payload(frame[_HEADER.size :])
    except DecodeError as exc:
        raise BadRequest(f"{op}: arguments the node would refuse: {exc}") from None
    return frame


def encode_result(request_id: int | None, result: Any) -> bytes:
    return encode_frame({"id": request_id, "ok": True, "result": result})


def cut_message(message: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    """`message` if it fits `limit` UTF-8 bytes, else its start and how much was cut."""
    raw = message.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return message
    kept = raw[: limit - 40].decode("utf-8", "ignore")
    return f"{kept}... ({len(raw) - len(kept.encode())} bytes cut)"


def encode_error(request_id: int | None, code: str, message: str) -> bytes:
    """An error reply; its message is cut to `MAX_ERROR_MESSAGE` bytes."""
    return encode_frame(
        {"id": request_id, "ok": False, "error": {"code": code, "message": cut_message(message)}}
    )


def encode_event(stream_id: int, item: Any) -> bytes:
    return encode_frame({"id": stream_id, "event": item})


def encode_end(stream_id: int, error: tuple[str, str] | None = None) -> bytes:
    """End a stream; `error` is (code, message) when the stream failed (message cut to
    `MAX_ERROR_MESSAGE` bytes)."""
    frame: dict[str, Any] = {"id": stream_id, "end": True}
    if error is not None:
        frame["error"] = {"code": error[0], "message": cut_message(error[1])}
    return encode_frame(frame)


def parse_server_frame(value: Any) -> ServerFrame:
    """Read a frame sent by the server; raises `DecodeError` on anything else."""
    if not isinstance(value, dict):
        raise DecodeError(f"server frame must be a map, not {_kind(value)}")
    frame_id = value.get("id")
    if frame_id is not None and type(frame_id) is not int:
        raise DecodeError(f"server frame id must be an int or null, not {_kind(frame_id)}")
    if "ok" in value:
        if value["ok"] is True:
            return Reply(frame_id, value.get("result"))
        if value["ok"] is False:
            return _parse_error(frame_id, value.get("error"))
        raise DecodeError("server frame ok must be a bool")
    if frame_id is None:
        raise DecodeError("stream frame without an id")
    if "event" in value:
        return StreamEvent(frame_id, value["event"])
    if value.get("end") is True:
        error = value.get("error")
        return StreamEnd(frame_id, None if error is None else _parse_error(frame_id, error))
    raise DecodeError("server frame is neither a reply, an event nor an end")


def _parse_error(frame_id: int | None, error: Any) -> ErrorReply:
    if not isinstance(error, dict):
        raise DecodeError("error reply without an error map")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        raise DecodeError("error reply code and message must be strings")
    return ErrorReply(frame_id, code, message)
