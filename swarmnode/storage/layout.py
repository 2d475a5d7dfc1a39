"""How entries are laid out in LMDB: database names, key and record formats.

    meta      b"node_id" | b"hlc" | b"seq" | b"format" -> small values
    entries   ns 0x00 key                    -> entry record (digests + header)
    members   ns 0x00 key 0x00 member        -> dots of one set member
    due       be64(ms) ns 0x00 key           -> b""  (next expiry or collection)
    merkle    ns 0x00 be32(leaf) key         -> 16-byte digest
    changes   be64(seq)                      -> ns 0x00 key  (feed for derived indexes)

Namespaces and keys never contain NUL, so `ns 0x00 key 0x00` is a prefix that
selects exactly one set's members whatever bytes the members hold, and the
members of a large set are read and written one by one, never as a whole.

An entry record is: 16-byte digest of the whole entry, 16-byte XOR of the
member digests, 8-byte due time (0: none), 1 byte "counted live" (whether the
namespace's live count includes it; an entry that expires stops being visible
before the sweeper gets to it, and this flag is what keeps the count honest),
then the canonical encoding of the entry with its set members left out.
"""

from __future__ import annotations

import hashlib
import struct

from swarmnode.errors import BadRequest, TooLarge

DB_NAMES = ("meta", "entries", "members", "due", "merkle", "changes")
SEP = b"\x00"
DIGEST_SIZE = 16
ZERO_DIGEST = bytes(DIGEST_SIZE)
_RECORD_HEAD = struct.Struct(">16s16sQB")
RECORD_HEAD_SIZE = _RECORD_HEAD.size
_BE64 = struct.Struct(">Q")
_BE32 = struct.Struct(">I")


def check_key(key: object, max_bytes: int) -> bytes:
    if not isinstance(key, str) or not key:
        raise BadRequest("key must be a non-empty string")
    raw = key.encode("utf-8", "surrogatepass")
    if b"\x00" in raw:
        raise BadRequest("key must not contain NUL characters")
    if len(raw) > max_bytes:
        raise TooLarge(f"key is {len(raw)} bytes; the limit is {max_bytes}")
    return raw


def entry_key(ns: str, key: str) -> bytes:
    return ns.encode() + SEP + key.encode("utf-8", "surrogatepass")


def split_entry_key(ekey: bytes) -> tuple[str, str]:
    ns, _, key = ekey.partition(SEP)
    return ns.decode(), key.decode("utf-8", "surrogatepass")


def ns_prefix(ns: str) -> bytes:
    return ns.encode() + SEP


def member_prefix(ekey: bytes) -> bytes:
    return ekey + SEP


def member_key(ekey: bytes, member: str) -> bytes:
    return ekey + SEP + member.encode("utf-8", "surrogatepass")


def member_from_key(mkey: bytes, prefix_len: int) -> str:
    return mkey[prefix_len:].decode("utf-8", "surrogatepass")


def due_key(due_ms: int, ekey: bytes) -> bytes:
    return _BE64.pack(due_ms) + ekey


def split_due_key(dkey: bytes) -> tuple[int, bytes]:
    return _BE64.unpack_from(dkey)[0], dkey[8:]


def merkle_key(ns: str, leaf: int, key: str) -> bytes:
    return ns.encode() + SEP + _BE32.pack(leaf) + key.encode("utf-8", "surrogatepass")


def merkle_leaf_prefix(ns: str, leaf: int) -> bytes:
    return ns.encode() + SEP + _BE32.pack(leaf)


def seq_key(seq: int) -> bytes:
    return _BE64.pack(seq)


def seq_from_key(k: bytes) -> int:
    return _BE64.unpack(k)[0]


def pack_record(digest: bytes, members_xor: bytes, due_ms: int, live: bool, header: bytes) -> bytes:
    return _RECORD_HEAD.pack(digest, members_xor, due_ms, int(live)) + header


def unpack_record(rec: bytes) -> tuple[bytes, bytes, int, bool, bytes]:
    digest, members_xor, due_ms, live = _RECORD_HEAD.unpack_from(rec)
    return digest, members_xor, due_ms, bool(live), bytes(rec[RECORD_HEAD_SIZE:])


def hash16(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(DIGEST_SIZE, "big")
