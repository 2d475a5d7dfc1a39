"""RESP2 and RESP3 on the wire, sans-IO: bytes in, commands out; values in, bytes out.

`RequestParser` turns what a client sends into commands (lists of bytes):
multibulk arrays as every client library sends them, and inline commands
(`GET key\\r\\n`) as telnet and redis-cli's simplest paths do. It is
incremental: a command split across reads resumes where it stopped, and a
large bulk arriving in many reads is gathered once, not re-copied per read.
Bounds are checked before anything is buffered: a bulk or array length above
the limit, a header or inline line that never ends, or a command larger than
`max_command_bytes` raises `ProtocolError` carrying the text Redis itself
sends (`Protocol error: invalid bulk length`, ...); the caller replies with
it and closes the connection, as Redis does, since framing can no longer be
trusted.

The encoder writes replies for either protocol version: `encode(value,
resp3)` maps Python values to RESP types (bytes and str to bulk strings,
int, float, bool, None, list, dict, set, and the marker types below), and
writes RESP3's maps, sets, doubles, booleans, nulls and pushes as their
RESP2 equivalents when the client did not ask for RESP3 (as Redis does).

`ReplyParser` reads any RESP2/RESP3 value back, with the same bounds plus a
nesting limit. The server does not need it; tests and tools use it to read
replies byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CRLF = b"\r\n"


@dataclass(frozen=True)
class CodecLimits:
    """Bounds on what one connection may make the server buffer (Redis's names in brackets)."""

    max_bulk_bytes: int = 16 << 20
    """Largest bulk string [proto-max-bulk-len, 512 MB in Redis]; a node value is at most 1 MiB."""
    max_array_len: int = 1 << 20
    """Most elements in one command or reply array (Redis: 1024*1024)."""
    max_inline_bytes: int = 64 << 10
    """Longest inline command, and longest length header line (Redis: 64 KiB)."""
    max_command_bytes: int = 64 << 20
    """Most bytes one command may span [client-query-buffer-limit, 1 GB in Redis]."""
    max_depth: int = 32
    """Deepest nesting of aggregates the reply parser accepts."""


class ProtocolError(Exception):
    """Bytes that are not RESP. `str(exc)` is the text Redis replies with (after `ERR `);
    `commands` holds the commands that arrived whole before the bad bytes, which Redis
    still carries out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.commands: list[list[bytes]] = []


class ErrorReply(Exception):
    """A RESP error reply; the text starts with its code (`ERR`, `WRONGTYPE`, `NOAUTH`, ...)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class SimpleString(str):
    """A status reply (`+OK`), as opposed to a bulk string."""

    __slots__ = ()


class Verbatim(str):
    """RESP3 verbatim text (INFO's reply); a bulk string in RESP2."""

    __slots__ = ()


class Push(list):
    """An out-of-band RESP3 push (pub/sub messages); a plain array in RESP2."""

    __slots__ = ()


class Replies(list):
    """Several replies to one command (SUBSCRIBE a b confirms each channel on its own)."""

    __slots__ = ()


OK = SimpleString("OK")


# --- requests ----------------------------------------------------------------------


def is_int(text: bytes) -> bool:
    """Digits with an optional leading minus: what Redis's string2ll accepts (no '+', ' ', '_')."""
    return text.isdigit() or (len(text) > 1 and text[0] == 45 and text[1:].isdigit())


class RequestParser:
    """Incremental parser of client commands. `feed(bytes) -> [[arg, ...], ...]`."""

    __slots__ = (
        "_args",
        "_command_bytes",
        "_have",
        "_limits",
        "_need",
        "_parts",
        "_want",
    )

    def __init__(self, limits: CodecLimits | None = None) -> None:
        self._limits = limits or CodecLimits()
        self._parts: list[bytes] = []
        """Bytes received but not yet parsed (kept as a list while waiting for `_need`)."""
        self._have = 0
        self._need = 0
        """How many buffered bytes the next step needs before it is worth parsing again."""
        self._args: list[bytes] | None = None
        """The arguments of a multibulk command read so far, while more are due."""
        self._want = 0
        self._command_bytes = 0
        """Bytes of the current multibulk command consumed before the buffer."""

    @property
    def buffered(self) -> int:
        """Bytes held for a command that has not arrived whole."""
        return self._have + self._command_bytes

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Every command completed by `data`, in order. Raises ProtocolError on bad input."""
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                self._check_size(self._have)
                return []
            data = b"".join(self._parts)
            self._parts = []
            self._have = 0
        commands: list[list[bytes]] = []
        try:
            pos = self._parse(data, commands)
        except ProtocolError as exc:
            exc.commands = commands
            raise
        rest = len(data) - pos
        if rest:
            self._parts.append(data[pos:] if pos else data)
            self._have = rest
            self._check_size(rest)
        return commands

    def _check_size(self, held: int) -> None:
        if self._command_bytes + held > self._limits.max_command_bytes:
            raise ProtocolError("Protocol error: command exceeds the query buffer limit")

    def _parse(self, buf: bytes, out: list[list[bytes]]) -> int:
        """Parse whole commands from `buf`; returns how far it got (the rest waits for data)."""
        limits = self._limits
        n = len(buf)
        pos = 0
        args = self._args
        want = self._want
        self._need = 0
        while True:
            if args is None:
                if pos >= n:
                    return pos
                if buf[pos] != 42:  # '*'
                    pos, inline = self._inline(buf, pos)
                    if inline is None:
                        return pos
                    if inline:
                        out.append(inline)
                    continue
                nl = buf.find(CRLF, pos)
                if nl < 0:
                    if n - pos > limits.max_inline_bytes:
                        raise ProtocolError("Protocol error: too big mbulk count string")
                    self._need = n - pos + 1
                    return pos
                text = buf[pos + 1 : nl]
                if not is_int(text):
                    raise ProtocolError("Protocol error: invalid multibulk length")
                count = int(text)
                if count > limits.max_array_len:
                    raise ProtocolError("Protocol error: invalid multibulk length")
                self._command_bytes = 0
                start = pos
                pos = nl + 2
                if count <= 0:
                    continue
                args = []
                want = count
            else:
                start = pos
            while want:
                if pos >= n:
                    break
                if buf[pos] != 36:  # '$'
                    raise ProtocolError(f"Protocol error: expected '$', got '{chr(buf[pos])}'")
                nl = buf.find(CRLF, pos)
                if nl < 0:
                    if n - pos > limits.max_inline_bytes:
                        raise ProtocolError("Protocol error: too big bulk count string")
                    self._need = n - pos + 1
                    break
                text = buf[pos + 1 : nl]
                if not text.isdigit():
                    raise ProtocolError("Protocol error: invalid bulk length")
                size = int(text)
                if size > limits.max_bulk_bytes:
                    raise ProtocolError("Protocol error: invalid bulk length")
                end = nl + 2 + size
                if self._command_bytes + end - start > limits.max_command_bytes:
                    raise ProtocolError("Protocol error: command exceeds the query buffer limit")
                if end + 2 > n:
                    self._need = end + 2 - pos
                    break
                args.append(buf[nl + 2 : end])
                pos = end + 2
                want -= 1
            if want:
                self._command_bytes += pos - start
                self._check_size(0)
                self._args = args
                self._want = want
                return pos
            out.append(args)
            args = None
            self._args = None
            self._command_bytes = 0

    def _inline(self, buf: bytes, pos: int) -> tuple[int, list[bytes] | None]:
        """One inline command: (new position, its arguments), or (pos, None) if incomplete."""
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > self._limits.max_inline_bytes:
                raise ProtocolError("Protocol error: too big inline request")
            self._need = len(buf) - pos + 1
            return pos, None
        if nl - pos > self._limits.max_inline_bytes:
            raise ProtocolError("Protocol error: too big inline request")
        line = buf[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        args = split_inline(line)
        if args is None:
            raise ProtocolError("Protocol error: unbalanced quotes in request")
        return nl + 1, args


_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("a"): b"\a",
}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SPACE = frozenset(b" \n\r\t\v\f\x00")


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline command like Redis's sdssplitargs; None for unbalanced quotes.

    Words are separated by whitespace. "double quotes" take \\n \\r \\t \\b \\a \\xHH and
    \\<char> escapes; 'single quotes' take only \\'. A closing quote must be followed by
    whitespace or the end of the line.
    """
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        word = bytearray()
        quote = 0
        while True:
            if quote == 34:  # inside "..."
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == 92
                    and i + 3 < n
                    and line[i + 1] == 120
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if c == 92 and i + 1 < n:
                    word += _ESCAPES.get(line[i + 1], line[i + 1 : i + 2])
                    i += 2
                    continue
                if c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                word.append(c)
                i += 1
            elif quote == 39:  # inside '...'
                if i >= n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    word.append(39)
                    i += 2
                    continue
                if c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                word.append(c)
                i += 1
            else:
                if i >= n or line[i] in _SPACE:
                    break
                c = line[i]
                if c in (34, 39):
                    quote = c
                else:
                    word.append(c)
                i += 1
        args.append(bytes(word))


def encode_command(*args: bytes | str | int | float) -> bytes:
    """One command as a multibulk array, as client libraries send it."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


# --- replies -------------------------------------------------------------------------

NULL2 = b"$-1\r\n"
NULL3 = b"_\r\n"


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _error_line(text: str) -> bytes:
    # A newline inside an error would end it early and desynchronise the client.
    return b"-%s\r\n" % text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def _double_text(value: float) -> bytes:
    if value != value:
        return b"nan"
    if value in (float("inf"), float("-inf")):
        return b"inf" if value > 0 else b"-inf"
    return repr(value).encode()


class Encoder:
    """Encodes reply values for one protocol version (`Encoder(resp3)` or the shared ones)."""

    __slots__ = ("_by_type", "resp3")

    def __init__(self, resp3: bool) -> None:
        self.resp3 = resp3
        self._by_type: dict[type, Callable[[Any], bytes]] = {
            bytes: bulk,
            str: self._str,
            SimpleString: self._simple,
            int: self._int,
            bool: self._bool,
            float: self._float,
            type(None): self._none,
            list: self._array,
            tuple: self._array,
            dict: self._map,
            set: self._set,
            frozenset: self._set,
            ErrorReply: self._error,
            Verbatim: self._verbatim,
            Push: self._push,
            Replies: self._replies,
            bytearray: bulk,
            memoryview: lambda v: bulk(bytes(v)),
        }

    def encode(self, value: Any) -> bytes:
        fn = self._by_type.get(type(value))
        if fn is None:
            fn = self._fallback(value)
        return fn(value)

    def _fallback(self, value: Any) -> Callable[[Any], bytes]:
        for cls, fn in self._by_type.items():
            if isinstance(value, cls):
                return fn
        raise TypeError(f"cannot encode {type(value).__name__} as RESP")

    @staticmethod
    def _str(value: str) -> bytes:
        data = value.encode("utf-8", "surrogateescape")
        return b"$%d\r\n%s\r\n" % (len(data), data)

    @staticmethod
    def _simple(value: str) -> bytes:
        if value == "OK":
            return b"+OK\r\n"
        return b"+%s\r\n" % value.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")

    @staticmethod
    def _int(value: int) -> bytes:
        return b":%d\r\n" % value

    def _bool(self, value: bool) -> bytes:
        if self.resp3:
            return b"#t\r\n" if value else b"#f\r\n"
        return b":1\r\n" if value else b":0\r\n"

    def _float(self, value: float) -> bytes:
        text = _double_text(value)
        if self.resp3:
            return b",%s\r\n" % text
        return bulk(text)

    def _none(self, value: None) -> bytes:
        return NULL3 if self.resp3 else NULL2

    @staticmethod
    def _error(value: ErrorReply) -> bytes:
        return _error_line(value.text)

    def _verbatim(self, value: str) -> bytes:
        data = value.encode()
        if self.resp3:
            return b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data)
        return bulk(data)

    def _array(self, value: list[Any] | tuple[Any, ...]) -> bytes:
        return self._aggregate(b"*", value)

    def _push(self, value: Push) -> bytes:
        return self._aggregate(b">" if self.resp3 else b"*", value)

    def _set(self, value: set[Any] | frozenset[Any]) -> bytes:
        return self._aggregate(b"~" if self.resp3 else b"*", value)

    def _aggregate(self, kind: bytes, items: Any) -> bytes:
        encode = self.encode
        parts = [b"%s%d\r\n" % (kind, len(items))]
        parts.extend(encode(item) for item in items)
        return b"".join(parts)

    def _map(self, value: dict[Any, Any]) -> bytes:
        encode = self.encode
        count = len(value) if self.resp3 else 2 * len(value)
        parts = [b"%s%d\r\n" % (b"%" if self.resp3 else b"*", count)]
        for k, v in value.items():
            parts.append(encode(k))
            parts.append(encode(v))
        return b"".join(parts)

    def _replies(self, value: Replies) -> bytes:
        return b"".join(self.encode(item) for item in value)


RESP2 = Encoder(resp3=False)
RESP3 = Encoder(resp3=True)


def encode(value: Any, resp3: bool = False) -> bytes:
    """One reply in RESP3 (`resp3`) or RESP2."""
    return (RESP3 if resp3 else RESP2).encode(value)


# --- reading replies back ----------------------------------------------------------


class _Incomplete(Exception):
    pass


class ReplyParser:
    """Parses RESP2/RESP3 replies: `feed(bytes) -> [value, ...]`.

    Values come back as the encoder takes them: bytes (bulk), SimpleString,
    ErrorReply, int, float, bool, None, list, dict, set, Push, and Verbatim
    (without its format prefix). An incomplete value is parsed again from its
    start once more data arrives, which is fine for the tools and tests that
    use this, and bounded by the same limits as requests.
    """

    def __init__(self, limits: CodecLimits | None = None) -> None:
        self._limits = limits or CodecLimits()
        self._buf = b""

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf + data
        values = []
        pos = 0
        while pos < len(buf):
            try:
                value, pos = self._value(buf, pos, 0)
            except _Incomplete:
                break
            values.append(value)
        self._buf = buf[pos:]
        if len(self._buf) > self._limits.max_command_bytes:
            raise ProtocolError("Protocol error: reply exceeds the buffer limit")
        return values

    def _line(self, buf: bytes, pos: int) -> tuple[bytes, int]:
        nl = buf.find(CRLF, pos)
        if nl < 0:
            if len(buf) - pos > self._limits.max_inline_bytes:
                raise ProtocolError("Protocol error: too big line")
            raise _Incomplete
        return buf[pos + 1 : nl], nl + 2

    def _length(self, text: bytes, what: str, limit: int) -> int:
        if not is_int(text):
            raise ProtocolError(f"Protocol error: invalid {what} length")
        n = int(text)
        if n < -1 or n > limit:
            raise ProtocolError(f"Protocol error: invalid {what} length")
        return n

    def _value(self, buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        if depth > self._limits.max_depth:
            raise ProtocolError("Protocol error: nesting too deep")
        kind = buf[pos : pos + 1]
        text, pos = self._line(buf, pos)
        if kind == b"+":
            return SimpleString(text.decode("utf-8", "replace")), pos
        if kind == b"-":
            return ErrorReply(text.decode("utf-8", "replace")), pos
        if kind == b":":
            if not is_int(text):
                raise ProtocolError("Protocol error: invalid integer")
            return int(text), pos
        if kind == b"_":
            return None, pos
        if kind == b"#":
            if text not in (b"t", b"f"):
                raise ProtocolError("Protocol error: invalid boolean")
            return text == b"t", pos
        if kind == b",":
            try:
                return float(text), pos
            except ValueError:
                raise ProtocolError("Protocol error: invalid double") from None
        if kind in (b"$", b"=", b"!"):
            n = self._length(text, "bulk", self._limits.max_bulk_bytes)
            if n < 0:
                return None, pos
            if len(buf) < pos + n + 2:
                raise _Incomplete
            data = buf[pos : pos + n]
            pos += n + 2
            if kind == b"=":
                return Verbatim(data[4:].decode("utf-8", "replace")), pos
            if kind == b"!":
                return ErrorReply(data.decode("utf-8", "replace")), pos
            return data, pos
        if kind in (b"*", b"~", b">", b"%"):
            n = self._length(text, "multibulk", self._limits.max_array_len)
            if n < 0:
                return None, pos
            if kind == b"%":
                out: dict[Any, Any] = {}
                for _ in range(n):
                    k, pos = self._value(buf, pos, depth + 1)
                    v, pos = self._value(buf, pos, depth + 1)
                    out[_hashable(k)] = v
                return out, pos
            items = []
            for _ in range(n):
                item, pos = self._value(buf, pos, depth + 1)
                items.append(item)
            if kind == b"~":
                return {_hashable(i) for i in items}, pos
            if kind == b">":
                return Push(items), pos
            return items, pos
        raise ProtocolError(f"Protocol error: unknown reply type {kind!r}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, (dict, set)):
        raise ProtocolError("Protocol error: an aggregate cannot be a map key or set member")
    return value
