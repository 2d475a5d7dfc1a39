"""What the blocking and the asyncio client share besides their operations.

The operations themselves (`client/operations.py`) are generated from the
operation table; this module has the framing, errors and connection helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarmnode.api.framing import (
    HEADER_SIZE,
    BadFrame,
    ErrorReply,
    Frame,
    FrameDecoder,
    Reply,
    ServerFrame,
    parse_server_frame,
)
from swarmnode.client.shaping import optional
from swarmnode.errors import (
    DecodeError,
    SwarmError,
    TooLarge,
    Unavailable,
    error_from_wire,
)


def watch_args(ns: str | None, prefix: str | None) -> dict[str, Any]:
    return optional({"ns": ns, "prefix": prefix})


def outcome(frame: Reply | ErrorReply) -> Any:
    """The result of a reply, or its typed exception raised."""
    if isinstance(frame, ErrorReply):
        raise error_from_wire(frame.code, frame.message)
    return frame.result


def copy_error(error: SwarmError) -> SwarmError:
    """A fresh exception of the same type, so each failed caller gets its own traceback."""
    return error_from_wire(error.code, error.message)


def check_request_size(frame: bytes, max_frame: int) -> None:
    """Refuse locally what the node would answer by closing the connection."""
    if len(frame) - HEADER_SIZE > max_frame:
        raise TooLarge(
            f"request of {len(frame) - HEADER_SIZE} bytes exceeds the {max_frame}-byte frame limit"
        )


def unreachable(path: Path, exc: OSError) -> Unavailable:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return Unavailable(
        f"cannot reach swarmnode at {path} ({reason}); is the node running? "
        "Start one with `swarmnode run`, or point SWARMNODE_SOCKET at its socket"
    )


def reply_frames(decoder: FrameDecoder, data: bytes, path: Path) -> list[ServerFrame]:
    """The node's frames in `data`; anything a node never sends loses the connection."""
    frames: list[ServerFrame] = []
    for event in decoder.feed(data):
        if isinstance(event, Frame):
            try:
                frames.append(parse_server_frame(event.value))
            except DecodeError as exc:
                raise connection_lost(path, f"bad frame from node: {exc}") from exc
        elif isinstance(event, BadFrame):
            raise connection_lost(path, f"bad frame from node: {event.reason}")
        else:
            raise connection_lost(path, f"reply frame of {event.length} bytes exceeds max_frame")
    return frames


def connection_lost(path: Path, detail: str = "") -> Unavailable:
    suffix = f": {detail}" if detail else ""
    return Unavailable(f"connection to swarmnode at {path} was lost{suffix}")


def no_reply(path: Path, timeout: float) -> Unavailable:
    return Unavailable(
        f"no reply from swarmnode at {path} within {timeout:g}s; "
        "the operation may still take effect"
    )


def not_a_stream(op: str) -> SwarmError:
    return error_from_wire("internal", f"{op} did not start a stream")
