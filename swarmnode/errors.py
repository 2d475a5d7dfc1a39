"""Errors shared by every layer.

Two families live here. `SwarmError` and its subclasses carry a stable error
code that crosses the client protocol unchanged (`bad_request`, `not_found`,
...): the server turns them into error replies and the client turns error
replies back into the same classes, so callers catch one type per code on both
sides of the socket. `DecodeError` is the single exception every decoder of
untrusted bytes (CRDT codec, gossip messages, client frames) raises, so a caller
can count and drop bad input with one `except` and never see anything else.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes or a decoded message that do not form a valid value of the expected shape."""


class SwarmError(Exception):
    """An error with a stable code that is reported to clients."""

    code = "internal"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(SwarmError):
    code = "bad_request"


class NotFound(SwarmError):
    code = "not_found"


class TooLarge(SwarmError):
    code = "too_large"


class Unavailable(SwarmError):
    code = "unavailable"


class Conflict(SwarmError):
    """A conditional write lost (if_absent on an existing key, cas mismatch)."""

    code = "conflict"


class WrongType(SwarmError):
    """An operation for one kind of entry (counter, set, register) on a key of another kind."""

    code = "wrong_type"


class Forbidden(SwarmError):
    """The caller may not do this to the namespace it named (or must present a token first)."""

    code = "forbidden"


class QuotaExceeded(SwarmError):
    """The write would take the agent past its quota; the message says the usage and limit."""

    code = "quota_exceeded"


class InternalError(SwarmError):
    code = "internal"


ERROR_CLASSES: dict[str, type[SwarmError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        NotFound,
        TooLarge,
        Unavailable,
        Conflict,
        WrongType,
        Forbidden,
        QuotaExceeded,
        InternalError,
    )
}


def error_from_wire(code: str, message: str) -> SwarmError:
    """Rebuild the typed exception for an error reply; unknown codes keep their code."""
    cls = ERROR_CLASSES.get(code, SwarmError)
    return cls(message, code=code)
