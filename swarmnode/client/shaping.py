"""Shaping a client's arguments for the wire: what both clients send the same way."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from swarmnode.errors import BadRequest


def optional(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments that were given: None (not set) is left out, so the node's default holds."""
    return {name: value for name, value in args.items() if value is not None}


def plain_vector(vector: Iterable[float] | bytes | None) -> bytes | None:
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
        values = [component(x) for x in vector]
    except (TypeError, ValueError):
        raise BadRequest("a vector must be a sequence of numbers") from None
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except OverflowError:
        raise BadRequest("a vector component is out of float32 range") from None


def plain_vectors(vectors: Any) -> list[bytes | None] | None:
    """Query vectors as a list of float32 byte strings: a 2-D numpy array row by row
    (one conversion for the whole array), or any iterable of vectors one by one."""
    if vectors is None:
        return None
    if hasattr(vectors, "dtype"):
        import numpy as np

        matrix = np.ascontiguousarray(vectors, dtype="<f4")
        if matrix.ndim != 2:
            raise BadRequest("vectors must be a 2-D array: one row per query")
        return [row.tobytes() for row in matrix]
    if isinstance(vectors, bytes | str):
        raise BadRequest("vectors must be a list of vectors")
    return [plain_vector(v) for v in vectors]


def component(x: Any) -> float:
    if isinstance(x, bool | str | bytes):
        raise TypeError(type(x).__name__)
    return float(x)


def members_list(members: Iterable[Any] | str | bytes | None) -> list[Any] | None:
    """A list of names from one name or many; None (an optional argument left out) stays."""
    if members is None:
        return None
    return [members] if isinstance(members, str | bytes) else list(members)
