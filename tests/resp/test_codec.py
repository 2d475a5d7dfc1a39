"""The RESP codec without a server: laws over generated values, and Redis's exact texts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.resp.codec import (
    CodecLimits,
    ErrorReply,
    ProtocolError,
    Push,
    ReplyParser,
    RequestParser,
    SimpleString,
    encode,
    encode_command,
    split_inline,
)

args = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
commands = st.lists(args, min_size=1, max_size=8)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@given(commands, st.lists(st.integers(min_value=0), max_size=20))
def test_commands_parse_the_same_however_the_bytes_are_split(
    cmds: list[list[bytes]], cuts: list[int]
) -> None:
    data = b"".join(encode_command(*c) for c in cmds)
    parser = RequestParser()
    out: list[list[bytes]] = []
    for piece in chunked(data, cuts):
        out += parser.feed(piece)
    assert out == cmds
    assert parser.buffered == 0


def test_a_large_bulk_in_small_reads_is_gathered_once() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = encode_command("SET", "k", value)
    parser = RequestParser()
    got = []
    for i in range(0, len(data), 1000):
        got += parser.feed(data[i : i + 1000])
        if not got:
            assert parser.buffered == i + len(data[i : i + 1000])
    assert got == [[b"SET", b"k", value]]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET key", [b"GET", b"key"]),
        (b"  SET  k   v  ", [b"SET", b"k", b"v"]),
        (b'SET k "a b\\n\\x41\\"c"', [b"SET", b"k", b'a b\nA"c']),
        (b"SET k 'it\\'s'", [b"SET", b"k", b"it's"]),
        (b'SET k ""', [b"SET", b"k", b""]),
        (b"", []),
        (b'SET k "open', None),
        (b'SET k "a"b', None),
        (b"SET k 'a", None),
    ],
)
def test_inline_commands_split_like_sdssplitargs(line: bytes, expected: Any) -> None:
    assert split_inline(line) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (b"*+1\r\n", "Protocol error: invalid multibulk length"),
        (b"*1_0\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n+OK\r\n", "Protocol error: expected '$', got '+'"),
        (b"*1\r\n$ 3\r\nabc\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$1025\r\n", "Protocol error: invalid bulk length"),
        (b"*9\r\n", "Protocol error: invalid multibulk length"),
        (b"*" + b"1" * 100, "Protocol error: too big mbulk count string"),
        (b"GET " + b"k" * 100, "Protocol error: too big inline request"),
    ],
)
def test_bounds_and_malformed_input_raise_redis_texts(data: bytes, message: str) -> None:
    limits = CodecLimits(max_bulk_bytes=1024, max_array_len=8, max_inline_bytes=64)
    with pytest.raises(ProtocolError) as caught:
        RequestParser(limits).feed(encode_command("PING") + data)
    assert str(caught.value) == message
    assert caught.value.commands == [[b"PING"]]


def test_a_command_larger_than_the_limit_is_refused_before_it_is_buffered() -> None:
    parser = RequestParser(CodecLimits(max_command_bytes=10_000))
    parser.feed(b"*2\r\n$6000\r\n" + b"a" * 6000 + b"\r\n")
    with pytest.raises(ProtocolError, match="query buffer limit"):
        parser.feed(b"$6000\r\n")  # refused from its length, before its bytes arrive
    parser = RequestParser(CodecLimits(max_command_bytes=10_000))
    parser.feed(b"*3\r\n" + b"$4000\r\n" + b"a" * 4000 + b"\r\n" + b"$4000\r\n" + b"b" * 3000)
    with pytest.raises(ProtocolError, match="query buffer limit"):
        parser.feed(b"b" * 1000 + b"\r\n$4000\r\n" + b"c" * 3000)


def test_empty_and_negative_arrays_are_skipped_like_redis() -> None:
    assert RequestParser().feed(b"*0\r\n*-1\r\n" + encode_command("PING")) == [[b"PING"]]


line_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20
)
scalars = st.one_of(
    st.binary(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    line_text.map(SimpleString),
    line_text.map(lambda t: ErrorReply("ERR " + t)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.binary(max_size=8), inner, max_size=4),
        st.frozensets(st.binary(max_size=8), max_size=4),
        st.lists(inner, max_size=4).map(Push),
    ),
    max_leaves=12,
)


def _as_resp2(value: Any) -> Any:
    """What a RESP2 client reads for a value the server encodes."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value).encode() if value == value and abs(value) != float("inf") else (
            b"inf" if value > 0 else b"-inf"
        )  # fmt: skip
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in (k, _as_resp2(v))]
    if isinstance(value, (list, frozenset)):
        return [_as_resp2(v) for v in value]
    return value


def _as_resp3(value: Any) -> Any:
    if isinstance(value, frozenset):
        return set(value)
    if isinstance(value, Push):
        return Push(_as_resp3(v) for v in value)
    if isinstance(value, list):
        return [_as_resp3(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_resp3(v) for k, v in value.items()}
    return value


@given(values)
def test_resp3_values_read_back_as_they_were_written(value: Any) -> None:
    assert ReplyParser().feed(encode(value, resp3=True)) == [_as_resp3(value)]


@given(values)
def test_resp2_writes_resp3_types_as_redis_does(value: Any) -> None:
    assert ReplyParser().feed(encode(value, resp3=False)) == [_as_resp2(value)]


@given(st.lists(values, min_size=1, max_size=5), st.lists(st.integers(min_value=0), max_size=10))
def test_replies_parse_the_same_however_the_bytes_are_split(
    replies: list[Any], cuts: list[int]
) -> None:
    data = b"".join(encode(v, resp3=True) for v in replies)
    parser = ReplyParser()
    out: list[Any] = []
    for piece in chunked(data, cuts):
        out += parser.feed(piece)
    assert out == [_as_resp3(v) for v in replies]


def test_special_doubles_and_nulls() -> None:
    assert encode(float("inf"), resp3=True) == b",inf\r\n"
    assert encode(float("-inf"), resp3=False) == b"$4\r\n-inf\r\n"
    assert encode(None, resp3=True) == b"_\r\n"
    assert encode(None, resp3=False) == b"$-1\r\n"
    assert encode(ErrorReply("ERR two\r\nlines")) == b"-ERR two  lines\r\n"


def test_reply_nesting_is_bounded() -> None:
    deep: Any = b"x"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ProtocolError, match="nesting too deep"):
        ReplyParser(CodecLimits(max_depth=32)).feed(encode(deep))
