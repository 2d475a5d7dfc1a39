"""How entries are laid out in LMDB: database names, key and record formats.

    meta      b"node_id" | b"hlc" | b"seq" | b"format" | b"stat:"ns -> small values
    entries   ns 0x00 K                      -> entry record
    members   h16(ns 0x00 K) M               -> member value (dots)
    due       be64(ms) ns 0x00 K             -> b""  (next expiry or collection)
    merkle    ns 0x00 be32(leaf) K           -> 16-byte digest [+ full key]
    changes   be64(seq)                      -> ns 0x00 key  (feed for derived indexes)
    member_bytes  ns 0x00 K                  -> be64 bytes of a set's member records
    archived  ns 0x00 K                      -> where an archived entry lives (archive/)
    archive_inbox  be64(seq)                 -> an expired entry waiting to be archived
    reads     ns 0x00 K                      -> be64 ms of the entry's latest read here

LMDB keys are at most 511 bytes, while clients may use keys and set members
up to 1 KiB. So K is the key's UTF-8 bytes when they are at most 400 bytes,
and otherwise their first 400 bytes, a NUL and a 16-byte hash of the whole
key; keys never contain NUL, so a NUL marks the shortened form, and the full
key is kept in the record (and in the Merkle value). Prefix scans and key order
hold for the first 400 bytes; keys sharing those are ordered by their hash.
Set members (M) are shortened the same way, the full member then leading the
member value. Members of one set share a 16-byte prefix, the hash of their
entry's key, so one set's members are read and written one by one, never as a
whole, and a member scan never runs into another set.

An entry record is: 16-byte digest of the whole entry, 16-byte XOR of the
member digests, 8-byte due time (0: none), 1 flag byte (bit 0 "counted live":
whether the namespace's live count includes it, since an entry that expires
stops being visible before the sweeper gets to it; bit 1: the full key follows
as a 2-byte length and its bytes), then the canonical encoding of the entry
with its set members left out (the header).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable
from typing import NamedTuple, ParamSpec, TypeVar

from swarmnode.errors import BadRequest, DecodeError, TooLarge

P = ParamSpec("P")
T = TypeVar("T")


def _reading(fn: Callable[P, T]) -> Callable[P, T]:
    """Bytes read back from LMDB can be damaged (a bad disk, a hostile snapshot):
    a reader raises DecodeError for them, like every other decoder, never
    struct.error or UnicodeDecodeError from deep inside."""

    @functools.wraps(fn)
    def read(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (struct.error, UnicodeDecodeError) as exc:
            raise DecodeError(f"corrupt stored record ({fn.__name__}: {exc})") from None

    return read


DB_NAMES = (
    "meta",
    "entries",
    "members",
    "due",
    "merkle",
    "changes",
    "member_bytes",
    "archived",
    "archive_inbox",
    "reads",
)
SEP = b"\x00"
DIGEST_SIZE = 16
ZERO_DIGEST = bytes(DIGEST_SIZE)
KEY_INLINE = 400
_RECORD_HEAD = struct.Struct(">16s16sQB")
RECORD_HEAD_SIZE = _RECORD_HEAD.size
_BE64 = struct.Struct(">Q")
_BE32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_LIVE, _FULL_KEY = 1, 2


class Record(NamedTuple):
    digest: bytes
    mxor: bytes
    due: int
    live: bool
    header: bytes
    full_key: bytes | None


def hash16(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(DIGEST_SIZE, "big")


def encode_name(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


@_reading
def decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def shorten(raw: bytes) -> bytes:
    """The form of a key or member inside an LMDB key (see the module docstring)."""
    if len(raw) <= KEY_INLINE:
        return raw
    return raw[:KEY_INLINE] + SEP + hash16(raw)


def is_shortened(part: bytes) -> bool:
    return SEP in part


def check_key(key: object, max_bytes: int) -> bytes:
    if not isinstance(key, str) or not key:
        raise BadRequest("key must be a non-empty string")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("key must be valid UTF-8 text") from None
    if b"\x00" in raw:
        raise BadRequest("key must not contain NUL characters")
    if len(raw) > max_bytes:
        raise TooLarge(f"key is {len(raw)} bytes; the limit is {max_bytes}")
    return raw


def entry_key(ns: str, key: str) -> bytes:
    return ns.encode() + SEP + shorten(encode_name(key))


def full_entry_key(ns: str, key: str) -> bytes:
    """Namespace and whole key, for places with no size limit (the change feed)."""
    return ns.encode() + SEP + encode_name(key)


@_reading
def split_full_key(raw: bytes) -> tuple[str, str]:
    ns, _, key = raw.partition(SEP)
    return ns.decode(), decode_name(key)


@_reading
def names_of(ekey: bytes, rec: Record) -> tuple[str, str]:
    """(namespace, key) of an entry from its LMDB key and record."""
    ns, _, part = ekey.partition(SEP)
    key = rec.full_key if rec.full_key is not None else part
    return ns.decode(), decode_name(key)


def ns_prefix(ns: str) -> bytes:
    return ns.encode() + SEP


def scan_prefix(ns: str, prefix: str) -> bytes:
    """Where a scan for keys starting with `prefix` begins (and what bounds it)."""
    return ns.encode() + SEP + encode_name(prefix)[:KEY_INLINE]


def member_prefix(ekey: bytes) -> bytes:
    return hash16(ekey)


def member_key(ekey: bytes, member: str) -> bytes:
    return hash16(ekey) + shorten(encode_name(member))


def pack_member(member: str, dots: bytes) -> bytes:
    raw = encode_name(member)
    if len(raw) <= KEY_INLINE:
        return dots
    # A msgpack array never starts with 0x00, so the marker is unambiguous.
    return SEP + _U16.pack(len(raw)) + raw + dots


@_reading
def unpack_member(mkey: bytes, value: bytes) -> tuple[str, bytes]:
    """(member, encoded dots) of a member record."""
    if value[:1] == SEP:
        n = _U16.unpack_from(value, 1)[0]
        return decode_name(value[3 : 3 + n]), value[3 + n :]
    return decode_name(mkey[DIGEST_SIZE:]), value


def due_key(due_ms: int, ekey: bytes) -> bytes:
    return _BE64.pack(due_ms) + ekey


@_reading
def split_due_key(dkey: bytes) -> tuple[int, bytes]:
    return _BE64.unpack_from(dkey)[0], dkey[8:]


def merkle_key(ns: str, leaf: int, key: str) -> bytes:
    return ns.encode() + SEP + _BE32.pack(leaf) + shorten(encode_name(key))


def merkle_value(key: str, digest: bytes) -> bytes:
    raw = encode_name(key)
    return digest if len(raw) <= KEY_INLINE else digest + raw


@_reading
def unpack_merkle(mkey: bytes, value: bytes, prefix_len: int) -> tuple[int, str, bytes]:
    """(leaf, key, digest) of a Merkle index record; `prefix_len` is len(ns_prefix)."""
    leaf = _BE32.unpack_from(mkey, prefix_len)[0]
    if len(value) > DIGEST_SIZE:
        return leaf, decode_name(value[DIGEST_SIZE:]), value[:DIGEST_SIZE]
    return leaf, decode_name(mkey[prefix_len + 4 :]), value


def merkle_leaf_prefix(ns: str, leaf: int) -> bytes:
    return ns.encode() + SEP + _BE32.pack(leaf)


def seq_key(seq: int) -> bytes:
    return _BE64.pack(seq)


@_reading
def seq_from_key(k: bytes) -> int:
    return _BE64.unpack(k)[0]


def pack_record(
    digest: bytes, mxor: bytes, due_ms: int, live: bool, header: bytes, key: str
) -> bytes:
    raw = encode_name(key)
    flags = _LIVE if live else 0
    if len(raw) > KEY_INLINE:
        return (
            _RECORD_HEAD.pack(digest, mxor, due_ms, flags | _FULL_KEY)
            + _U16.pack(len(raw))
            + raw
            + header
        )
    return _RECORD_HEAD.pack(digest, mxor, due_ms, flags) + header


@_reading
def unpack_record(rec: bytes) -> Record:
    digest, mxor, due_ms, flags = _RECORD_HEAD.unpack_from(rec)
    at = RECORD_HEAD_SIZE
    full_key = None
    if flags & _FULL_KEY:
        n = _U16.unpack_from(rec, at)[0]
        full_key = bytes(rec[at + 2 : at + 2 + n])
        at += 2 + n
    return Record(digest, mxor, due_ms, bool(flags & _LIVE), bytes(rec[at:]), full_key)
