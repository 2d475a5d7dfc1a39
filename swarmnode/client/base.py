"""What the blocking and the asyncio client share.

`Operations` holds the named operations once: each shapes its arguments and
hands them to `call`, which the blocking client answers with a value and the
asyncio client with an awaitable. Optional arguments left at None are not sent,
so the node applies its own defaults.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

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
from swarmnode.errors import (
    BadRequest,
    DecodeError,
    SwarmError,
    TooLarge,
    Unavailable,
    error_from_wire,
)

R = TypeVar("R")


class Operations(ABC, Generic[R]):
    """The client operations of docs/PROTOCOL.md, named as on the wire."""

    @abstractmethod
    def call(self, op: str, /, **args: Any) -> R:
        """Send `op` with exactly these arguments and return (or await) its result."""

    def ping(self) -> R:
        return self.call("ping")

    def put(
        self,
        ns: str,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        meta: dict[str, Any] | None = None,
        vector: Iterable[float] | None = None,
        if_absent: bool = False,
    ) -> R:
        """Store `value`; `if_absent` makes it fail with `Conflict` when the key exists."""
        return self.call(
            "put",
            ns=ns,
            key=key,
            value=value,
            **_optional(
                ttl=ttl,
                meta=meta,
                vector=_plain_vector(vector),
                if_absent=True if if_absent else None,
            ),
        )

    def get(self, ns: str, key: str) -> R:
        return self.call("get", ns=ns, key=key)

    def delete(self, ns: str, key: str) -> R:
        return self.call("delete", ns=ns, key=key)

    def list(
        self,
        ns: str,
        *,
        prefix: str | None = None,
        pattern: str | None = None,
        limit: int | None = None,
        cursor: Any = None,
    ) -> R:
        return self.call(
            "list", ns=ns, **_optional(prefix=prefix, pattern=pattern, limit=limit, cursor=cursor)
        )

    def search(
        self,
        pattern: str,
        *,
        ns: str | None = None,
        mode: str | None = None,
        limit: int | None = None,
    ) -> R:
        return self.call("search", pattern=pattern, **_optional(ns=ns, mode=mode, limit=limit))

    def vsearch(
        self,
        ns: str,
        vector: Iterable[float] | None = None,
        *,
        text: str | None = None,
        key: str | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        ef: int | None = None,
        embedder: str | None = None,
    ) -> R:
        """Nearest neighbours of `vector`, of `text` embedded by the namespace's embedder,
        or of the vector stored under `key` ("more like this")."""
        return self.call(
            "vsearch",
            ns=ns,
            k=k,
            **_optional(
                vector=_plain_vector(vector),
                text=text,
                key=key,
                filter=filter,
                ef=ef,
                embedder=embedder,
            ),
        )

    def incr(self, ns: str, key: str, by: int = 1, *, ttl: float | None = None) -> R:
        return self.call("incr", ns=ns, key=key, by=by, **_optional(ttl=ttl))

    def sadd(
        self, ns: str, key: str, members: Iterable[Any] | str, *, ttl: float | None = None
    ) -> R:
        """Add members; a single str or bytes is one member, not a sequence of characters."""
        return self.call("sadd", ns=ns, key=key, members=_members(members), **_optional(ttl=ttl))

    def srem(self, ns: str, key: str, members: Iterable[Any] | str) -> R:
        return self.call("srem", ns=ns, key=key, members=_members(members))

    def smembers(self, ns: str, key: str) -> R:
        return self.call("smembers", ns=ns, key=key)

    def cas(self, ns: str, key: str, expected: Any, value: Any) -> R:
        """Replace the value only if it is still `expected`; raises `Conflict` otherwise."""
        return self.call("cas", ns=ns, key=key, expected=expected, value=value)

    def ns_init(
        self,
        ns: str,
        *,
        ttl: float | None = None,
        policy: str | None = None,
        dim: int | None = None,
        metric: str | None = None,
        embedder: str | None = None,
    ) -> R:
        return self.call(
            "ns_init",
            ns=ns,
            **_optional(ttl=ttl, policy=policy, dim=dim, metric=metric, embedder=embedder),
        )

    def ns_delete(self, ns: str) -> R:
        return self.call("ns_delete", ns=ns)

    def ns_stats(self, ns: str | None = None) -> R:
        return self.call("ns_stats", **_optional(ns=ns))

    def ns_list(self) -> R:
        return self.call("ns_list")

    def members(self) -> R:
        return self.call("members")

    def sync(self, peer: str | None = None) -> R:
        return self.call("sync", **_optional(peer=peer))

    def compact(self, ns: str | None = None) -> R:
        return self.call("compact", **_optional(ns=ns))

    def persist(self, session_id: str) -> R:
        return self.call("persist", session_id=session_id)

    def restore(self, session_id: str) -> R:
        return self.call("restore", session_id=session_id)

    def stats(self) -> R:
        return self.call("stats")


def _optional(**args: Any) -> dict[str, Any]:
    return {name: value for name, value in args.items() if value is not None}


def _plain_vector(vector: Iterable[float] | bytes | None) -> bytes | None:
    """A vector as little-endian float32 bytes, the node's own form.

    Far cheaper to build and to send than a list of msgpack floats, for numpy
    arrays (no per-element Python loop) and lists alike; bytes pass through.
    """
    if vector is None or isinstance(vector, bytes):
        return vector
    try:
        if hasattr(vector, "dtype"):
            import numpy as np  # imported lazily: the CLI starts faster without numpy

            return np.ascontiguousarray(vector, dtype="<f4").reshape(-1).tobytes()
        values = [_component(x) for x in vector]
    except (TypeError, ValueError):
        raise BadRequest("a vector must be a sequence of numbers") from None
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except OverflowError:
        raise BadRequest("a vector component is out of float32 range") from None


def _component(x: Any) -> float:
    if isinstance(x, bool | str | bytes):
        raise TypeError(type(x).__name__)
    return float(x)


def _members(members: Iterable[Any] | str | bytes) -> list[Any]:
    return [members] if isinstance(members, str | bytes) else list(members)


def watch_args(ns: str | None, prefix: str | None) -> dict[str, Any]:
    return _optional(ns=ns, prefix=prefix)


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
