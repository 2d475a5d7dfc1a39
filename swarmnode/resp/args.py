"""Reading numbers from command arguments the way Redis does, with its error texts."""

from __future__ import annotations

from swarmnode.resp.codec import ErrorReply, is_int
from swarmnode.resp.errors import NOT_FLOAT, NOT_INTEGER

INT64 = (-(1 << 63), (1 << 63) - 1)


def parse_int(raw: bytes, error: str = NOT_INTEGER) -> int:
    """An integer as Redis reads one (no sign but '-', no spaces), within 64 bits."""
    if not is_int(raw):
        raise ErrorReply(error)
    value = int(raw)
    if not INT64[0] <= value <= INT64[1]:
        raise ErrorReply(error)
    return value


def parse_float(raw: bytes) -> float:
    """A finite number (Redis refuses nan; inf makes no sense in a vector)."""
    try:
        value = float(raw)
    except ValueError:
        raise ErrorReply(NOT_FLOAT) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ErrorReply(NOT_FLOAT)
    return value
