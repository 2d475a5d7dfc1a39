"""What an entry may hold, in one canonical form.

Replicas hash encoded states to compare them (anti-entropy), so equal values
must encode to identical bytes everywhere. User values are therefore brought
into one canonical form when they enter the system: maps get their keys
sorted, tuples become lists, and only msgpack's plain types are accepted.
"""

from __future__ import annotations

import math
import struct
from typing import Any

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1
MAX_DEPTH = 32


class InvalidValue(ValueError):
    """A value, metadata map or vector that swarmnode cannot store."""


def canonical(value: Any, *, _depth: int = 0) -> Any:
    """Validate `value` and return it in canonical form (dict keys sorted, tuples as lists).

    Every write and every decoded state passes here, so the common exact types are
    told apart by one dictionary lookup; anything else (subclasses included) takes
    the general checks, with the same outcome.
    """
    if _depth > MAX_DEPTH:
        raise InvalidValue(f"value nested deeper than {MAX_DEPTH} levels")
    kind = _EXACT.get(type(value))
    if kind == _PLAIN:
        return value
    # A plain child is taken as it is unless it would sit too deep.
    inline = _depth < MAX_DEPTH
    if kind == _MAP:
        try:
            keys = sorted(value)
        except TypeError:
            return _canonical_any(value, _depth)
        out = {}
        for k in keys:
            if type(k) is not str:
                return _canonical_any(value, _depth)
            v = value[k]
            out[k] = (
                v if inline and _EXACT.get(type(v)) == _PLAIN else canonical(v, _depth=_depth + 1)
            )
        return out
    if kind == _LIST:
        return [
            v if inline and _EXACT.get(type(v)) == _PLAIN else canonical(v, _depth=_depth + 1)
            for v in value
        ]
    return _canonical_any(value, _depth)


def _canonical_any(value: Any, _depth: int) -> Any:
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidValue("integer out of the 64-bit range")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (list, tuple)):
        return [canonical(v, _depth=_depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k in sorted(value, key=_key_order):
            if not isinstance(k, str):
                raise InvalidValue("map keys must be strings")
            out[k] = canonical(value[k], _depth=_depth + 1)
        return out
    raise InvalidValue(f"unsupported value type {type(value).__name__}")


_PLAIN, _MAP, _LIST = 0, 1, 2
_EXACT: dict[type, int] = {
    type(None): _PLAIN,
    bool: _PLAIN,
    str: _PLAIN,
    bytes: _PLAIN,
    float: _PLAIN,
    dict: _MAP,
    list: _LIST,
    tuple: _LIST,
}
"""Exact types `canonical` settles at once; `int` is not here (its range is checked)."""


def _key_order(k: Any) -> str:
    if not isinstance(k, str):
        raise InvalidValue("map keys must be strings")
    return k


def canonical_meta(meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise InvalidValue("meta must be a map")
    return canonical(meta) or None


def pack_vector(vector: Any) -> bytes | None:
    """A vector as little-endian float32 bytes; refuses NaN, infinities and empty vectors."""
    if vector is None:
        return None
    if isinstance(vector, bytes):
        if len(vector) == 0 or len(vector) % 4:
            raise InvalidValue("a vector as bytes must be a non-empty sequence of float32")
        floats = struct.unpack(f"<{len(vector) // 4}f", vector)
    else:
        try:
            floats = [float(x) for x in vector]
        except (TypeError, ValueError) as exc:
            raise InvalidValue("a vector must be a list of numbers") from exc
        if not floats:
            raise InvalidValue("a vector must not be empty")
    if not all(math.isfinite(x) for x in floats):
        raise InvalidValue("a vector must not contain NaN or infinite values")
    try:
        return struct.pack(f"<{len(floats)}f", *floats)
    except OverflowError as exc:
        raise InvalidValue("a vector component is out of float32 range") from exc


def unpack_vector(data: bytes | None) -> list[float] | None:
    if data is None:
        return None
    return list(struct.unpack(f"<{len(data) // 4}f", data))
