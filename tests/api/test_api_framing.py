"""The frame codec, byte for byte, with no socket in sight."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.api.framing import (
    BadFrame,
    ErrorReply,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    Reply,
    Request,
    RequestDecoder,
    StreamEnd,
    StreamEvent,
    encode_end,
    encode_error,
    encode_event,
    encode_frame,
    encode_request,
    encode_result,
    parse_server_frame,
)
from swarmnode.errors import DecodeError


def raw_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_frames_fed_one_byte_at_a_time_decode_like_frames_fed_whole() -> None:
    data = encode_request(1, "put", {"ns": "tasks", "key": "k", "value": b"\x00\xff"})
    data += encode_request(2, "get", {"ns": "tasks", "key": "k"})
    decoder = RequestDecoder()
    events = [event for byte in data for event in decoder.feed(bytes([byte]))]
    assert events == RequestDecoder().feed(data)
    assert events == [
        Request(1, "put", {"ns": "tasks", "key": "k", "value": b"\x00\xff"}),
        Request(2, "get", {"ns": "tasks", "key": "k"}),
    ]
    assert decoder.buffered == 0


def test_partial_frame_is_held_until_complete() -> None:
    data = encode_frame({"a": 1})
    decoder = FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.buffered == len(data) - 1
    assert decoder.feed(data[-1:]) == [Frame({"a": 1})]


def test_malformed_payload_is_a_bad_frame_and_the_next_frame_still_decodes() -> None:
    data = raw_frame(b"\xc1") + raw_frame(b"") + raw_frame(b"\x01\x02") + encode_frame("ok")
    events = FrameDecoder().feed(data)
    assert [type(e) for e in events] == [BadFrame, BadFrame, BadFrame, Frame]
    assert all(e.id is None for e in events[:3])
    assert events[3] == Frame("ok")


@pytest.mark.parametrize(
    ("value", "expected_id"),
    [
        ([1, "put", {}], None),
        ("hello", None),
        ({"op": "ping", "args": {}}, None),
        ({"id": True, "op": "ping", "args": {}}, None),
        ({"id": "7", "op": "ping", "args": {}}, None),
        ({"id": 1.5, "op": "ping", "args": {}}, None),
        ({"id": 7, "args": {}}, 7),
        ({"id": 7, "op": 3, "args": {}}, 7),
        ({"id": 7, "op": b"ping", "args": {}}, 7),
        ({"id": 7, "op": "ping", "args": [1, 2]}, 7),
        ({"id": 7, "op": "ping", "args": None}, 7),
    ],
)
def test_a_frame_that_is_not_a_request_is_bad_with_the_id_when_readable(
    value: Any, expected_id: int | None
) -> None:
    (event,) = RequestDecoder().feed(encode_frame(value))
    assert isinstance(event, BadFrame)
    assert event.id == expected_id
    assert event.reason


def test_absent_args_mean_no_arguments_and_unknown_fields_are_ignored() -> None:
    events = RequestDecoder().feed(encode_frame({"id": 3, "op": "ping", "trace": "x"}))
    assert events == [Request(3, "ping", {})]


def test_a_length_above_the_limit_spends_the_decoder() -> None:
    decoder = RequestDecoder(max_frame=100)
    ok = encode_request(1, "ping", {})
    events = decoder.feed(ok + struct.pack(">I", 101) + b"x" * 101 + ok)
    assert events == [Request(1, "ping", {}), FrameTooLarge(101, 100)]
    assert decoder.spent
    assert decoder.feed(ok) == []
    assert decoder.buffered == 0


def test_a_payload_exactly_at_the_limit_is_accepted() -> None:
    payload = msgpack.packb(b"y" * 90)
    decoder = FrameDecoder(max_frame=len(payload))
    assert decoder.feed(raw_frame(payload)) == [Frame(b"y" * 90)]


def test_http_request_bytes_are_read_as_an_absurd_length() -> None:
    (event,) = FrameDecoder().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(event, FrameTooLarge)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xd6\xff\x00\x00\x00\x01", id="timestamp-ext"),
        pytest.param(b"\xd4\x01\x00", id="ext-type"),
        pytest.param(b"\xa2\xff\xfe", id="invalid-utf8-str"),
        pytest.param(b"\x81\x01\x01", id="int-map-key"),
        pytest.param(b"\x81\x91\x01\x01", id="array-map-key"),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="4g-array-header-in-5-bytes"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="4g-map-header-in-5-bytes"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="4g-bin-header-in-5-bytes"),
        pytest.param(b"\x91" * 5000 + b"\xc0", id="deep-nesting"),
    ],
)
def test_strict_unpacking_rejects_without_allocating(payload: bytes) -> None:
    (event,) = FrameDecoder().feed(raw_frame(payload))
    assert isinstance(event, BadFrame)
    assert event.reason.startswith("malformed msgpack")


def test_bin_is_bytes_str_is_str_and_arrays_are_lists() -> None:
    (event,) = FrameDecoder().feed(encode_frame({"b": b"\x00", "s": "é", "t": (1, (2, 3))}))
    assert event == Frame({"b": b"\x00", "s": "é", "t": [1, [2, 3]]})
    assert type(event.value["b"]) is bytes
    assert type(event.value["t"][1]) is list


def test_server_frames_round_trip_through_the_client_parser() -> None:
    data = b"".join(
        [
            encode_result(1, {"value": 42}),
            encode_error(2, "not_found", "no such key"),
            encode_error(None, "too_large", "frame too big"),
            encode_event(3, {"key": "k"}),
            encode_end(3),
            encode_end(4, ("conflict", "lost")),
        ]
    )
    frames = [parse_server_frame(e.value) for e in FrameDecoder().feed(data)]
    assert frames == [
        Reply(1, {"value": 42}),
        ErrorReply(2, "not_found", "no such key"),
        ErrorReply(None, "too_large", "frame too big"),
        StreamEvent(3, {"key": "k"}),
        StreamEnd(3),
        StreamEnd(4, ErrorReply(4, "conflict", "lost")),
    ]


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"id": "1", "ok": True},
        {"id": 1, "ok": "yes"},
        {"id": 1, "ok": False},
        {"id": 1, "ok": False, "error": {"code": 1, "message": "m"}},
        {"id": None, "event": 1},
        {"id": 1, "end": False},
        {"id": 1},
    ],
)
def test_the_client_parser_rejects_what_the_server_never_sends(value: Any) -> None:
    with pytest.raises(DecodeError):
        parse_server_frame(value)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

stream_pieces = st.one_of(
    msgpack_values.map(encode_frame),
    st.builds(
        encode_request,
        st.integers(min_value=0, max_value=2**63 - 1),
        st.text(max_size=10),
        st.dictionaries(st.text(max_size=8), msgpack_values, max_size=3),
    ),
    st.binary(max_size=40).map(raw_frame),
    st.binary(max_size=12),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(stream_pieces, max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    max_frame=st.integers(min_value=0, max_value=300),
)
def test_any_bytes_in_any_chunks_give_only_documented_events_independent_of_chunking(
    pieces: list[bytes], cuts: list[int], max_frame: int
) -> None:
    data = b"".join(pieces)
    whole = RequestDecoder(max_frame).feed(data)
    chunked_decoder = RequestDecoder(max_frame)
    chunked = [event for chunk in split(data, cuts) for event in chunked_decoder.feed(chunk)]
    assert repr(chunked) == repr(whole)
    for event in whole:
        assert isinstance(event, Request | BadFrame | FrameTooLarge)
        if isinstance(event, BadFrame):
            assert event.id is None or type(event.id) is int
    too_large = [i for i, e in enumerate(whole) if isinstance(e, FrameTooLarge)]
    assert too_large in ([], [len(whole) - 1])
    assert chunked_decoder.spent == bool(too_large)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(msgpack_values, max_size=6),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_valid_frames_in_any_chunks_decode_to_the_values_sent(
    values: list[Any], cuts: list[int]
) -> None:
    data = b"".join(encode_frame(v) for v in values)
    decoder = FrameDecoder()
    events = [event for chunk in split(data, cuts) for event in decoder.feed(chunk)]
    assert repr(events) == repr([Frame(v) for v in values])
    assert decoder.buffered == 0
