"""Damaged stored records raise DecodeError, like every decoder of bytes from outside.

Found by fuzz/stored_records.py: a truncated record raised struct.error and a
record whose key bytes are not UTF-8 raised UnicodeDecodeError, from deep in
the store's read path.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.storage import layout as L


@pytest.mark.parametrize(
    "read",
    [
        lambda: L.unpack_record(b""),
        lambda: L.unpack_record(bytes(41)[:40]),
        lambda: L.unpack_record(bytes(40) + b"\x02\x00"),  # full-key flag, length cut off
        lambda: L.names_of(b"ns\x00\xff\xfe", L.unpack_record(bytes(41))),
        lambda: L.split_due_key(b"\x00\x01"),
        lambda: L.unpack_member(b"", b"\x00\x00"),
        lambda: L.unpack_merkle(b"ns\x00", bytes(16), 3),
        lambda: L.split_full_key(b"\xff\x00k"),
    ],
)
def test_a_damaged_record_raises_decode_error(read) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError):
        read()


@given(st.binary(max_size=200))
def test_any_bytes_are_a_record_or_a_decode_error(data: bytes) -> None:
    try:
        rec = L.unpack_record(data)
    except DecodeError:
        return
    assert len(rec.digest) == 16 and len(rec.mxor) == 16
