"""Raft's messages: small dataclasses, and their wire form as msgpack-able maps.

`encode(msg)` gives a map whose "t" names the kind (`raft.<kind>`), ready for
the node's sealed transport. `decode(map)` checks every field of a map that
arrived from the network and returns the typed message, or raises
`DecodeError`: a malformed or hostile message is counted and dropped by the
caller, never half-applied. Unknown extra fields are ignored so that later
versions may add some. Every count and length is bounded before anything is
built from it.

Fields common to all kinds: "f" sender id, "to" recipient id, "term".

| t                     | fields                                                        |
|-----------------------|---------------------------------------------------------------|
| raft.prevote          | li last log index, lt last log term                           |
| raft.vote             | li, lt                                                        |
| raft.prevote_resp     | rj reject                                                     |
| raft.vote_resp        | rj                                                            |
| raft.append           | pi prev index, pt prev term, c commit, e [[term, kind, data]] |
| raft.append_resp      | i index, rj reject, hi hint index, ht hint term               |
| raft.heartbeat        | c commit, rs read sequence                                    |
| raft.heartbeat_resp   | rs read sequence echoed, c the follower's commit index        |
| raft.snapshot         | si index, st term, v voters, l learners, o offset, n size, d  |
| raft.snapshot_resp    | si index, o next offset wanted, dn done                       |
| raft.read_index       | x context                                                     |
| raft.read_index_resp  | x context, i read index                                       |

The entries of an append are numbered from pi + 1; they are not given indexes
on the wire, so a message cannot contradict itself about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarmnode.consensus.records import (
    ConfState,
    Entry,
    EntryKind,
    SnapshotMeta,
    decode_conf_change,
    node_list,
)
from swarmnode.errors import DecodeError
from swarmnode.membership.messages import node_id as check_node_id

MAX_INDEX = 2**63 - 1
"""Largest index or term: they are msgpack unsigned 64-bit but kept within int64."""
MAX_APPEND_ENTRIES = 16_384
"""Entries in one append; above any `max_append_entries` worth configuring."""
MAX_ENTRY_BYTES = 4 << 20
"""Data of one entry. The state machine's commands are far smaller (values up to 1 MiB)."""
MAX_CHUNK_BYTES = 64 << 20
"""Data in one snapshot chunk; the transport refuses messages above 32 MiB anyway."""
MAX_SNAPSHOT_SIZE = 1 << 40
"""Announced size of a whole snapshot; the follower's own bound is `max_snapshot_bytes`."""
MAX_CONTEXT_BYTES = 256
"""A ReadIndex context (a request id chosen by the runtime)."""

PREVOTE = "raft.prevote"
VOTE = "raft.vote"
PREVOTE_RESP = "raft.prevote_resp"
VOTE_RESP = "raft.vote_resp"
APPEND = "raft.append"
APPEND_RESP = "raft.append_resp"
HEARTBEAT = "raft.heartbeat"
HEARTBEAT_RESP = "raft.heartbeat_resp"
SNAPSHOT = "raft.snapshot"
SNAPSHOT_RESP = "raft.snapshot_resp"
READ_INDEX = "raft.read_index"
READ_INDEX_RESP = "raft.read_index_resp"


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """RequestVote, or a pre-vote (`pre`): "could I win at `term`?", changing nothing."""

    frm: str
    to: str
    term: int
    last_index: int
    last_term: int
    pre: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse:
    frm: str
    to: str
    term: int
    reject: bool
    pre: bool = False


@dataclass(frozen=True, slots=True)
class Append:
    """AppendEntries: `entries` follow (prev_index, prev_term) in the leader's log."""

    frm: str
    to: str
    term: int
    prev_index: int
    prev_term: int
    commit: int
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Accepted: the follower's log matches the leader's up to `index`. Rejected: the
    entry at `index` did not match; (hint_index, hint_term) is the follower's last entry
    that might still match, so the leader skips a whole term per round trip."""

    frm: str
    to: str
    term: int
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader liveness, the commit index the follower may use, and the leader's latest
    ReadIndex round (`read_seq`), which the follower echoes."""

    frm: str
    to: str
    term: int
    commit: int
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    """Echoes the heartbeat's `read_seq`; `commit` tells a leader that is leaving the group
    when the remaining voters know its removal is committed."""

    frm: str
    to: str
    term: int
    read_seq: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """InstallSnapshot: bytes [offset, offset + len(data)) of a snapshot of `size` bytes."""

    frm: str
    to: str
    term: int
    meta: SnapshotMeta
    offset: int
    size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    """The follower wants bytes from `offset` of snapshot `index` next, or has it (`done`)."""

    frm: str
    to: str
    term: int
    index: int
    offset: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks its leader for a read index on behalf of a local reader."""

    frm: str
    to: str
    term: int
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    frm: str
    to: str
    term: int
    context: bytes
    index: int


RaftMessage = (
    VoteRequest
    | VoteResponse
    | Append
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | SnapshotChunk
    | SnapshotResponse
    | ReadIndexRequest
    | ReadIndexResponse
)


def kind(msg: RaftMessage) -> str:
    """The "t" of a message."""
    if isinstance(msg, VoteRequest):
        return PREVOTE if msg.pre else VOTE
    if isinstance(msg, VoteResponse):
        return PREVOTE_RESP if msg.pre else VOTE_RESP
    return _KINDS[type(msg)]


_KINDS: dict[type, str] = {
    Append: APPEND,
    AppendResponse: APPEND_RESP,
    Heartbeat: HEARTBEAT,
    HeartbeatResponse: HEARTBEAT_RESP,
    SnapshotChunk: SNAPSHOT,
    SnapshotResponse: SNAPSHOT_RESP,
    ReadIndexRequest: READ_INDEX,
    ReadIndexResponse: READ_INDEX_RESP,
}


def encode(msg: RaftMessage) -> dict[str, Any]:
    """The wire map of a message: msgpack-able, "t" first."""
    wire: dict[str, Any] = {"t": kind(msg), "f": msg.frm, "to": msg.to, "term": msg.term}
    match msg:
        case VoteRequest():
            wire["li"] = msg.last_index
            wire["lt"] = msg.last_term
        case VoteResponse():
            wire["rj"] = msg.reject
        case Append():
            wire["pi"] = msg.prev_index
            wire["pt"] = msg.prev_term
            wire["c"] = msg.commit
            wire["e"] = [[e.term, int(e.kind), e.data] for e in msg.entries]
        case AppendResponse():
            wire["i"] = msg.index
            wire["rj"] = msg.reject
            if msg.reject:
                wire["hi"] = msg.hint_index
                wire["ht"] = msg.hint_term
        case Heartbeat():
            wire["c"] = msg.commit
            wire["rs"] = msg.read_seq
        case HeartbeatResponse():
            wire["rs"] = msg.read_seq
            wire["c"] = msg.commit
        case SnapshotChunk():
            wire["si"] = msg.meta.index
            wire["st"] = msg.meta.term
            wire["v"] = sorted(msg.meta.conf.voters)
            wire["l"] = sorted(msg.meta.conf.learners)
            wire["o"] = msg.offset
            wire["n"] = msg.size
            wire["d"] = msg.data
        case SnapshotResponse():
            wire["si"] = msg.index
            wire["o"] = msg.offset
            wire["dn"] = msg.done
        case ReadIndexRequest():
            wire["x"] = msg.context
        case ReadIndexResponse():
            wire["x"] = msg.context
            wire["i"] = msg.index
    return wire


def decode(wire: Any) -> RaftMessage:
    """Check an untrusted map and return its message, or raise `DecodeError`."""
    if not isinstance(wire, dict):
        raise DecodeError("raft message must be a map")
    t = wire.get("t")
    frm = check_node_id(wire.get("f"), "f")
    to = check_node_id(wire.get("to"), "to")
    term = _uint(wire, "term")
    if t in (PREVOTE, VOTE):
        return VoteRequest(frm, to, term, _uint(wire, "li"), _uint(wire, "lt"), t == PREVOTE)
    if t in (PREVOTE_RESP, VOTE_RESP):
        return VoteResponse(frm, to, term, _bool(wire, "rj"), t == PREVOTE_RESP)
    if t == APPEND:
        prev_index, prev_term = _uint(wire, "pi"), _uint(wire, "pt")
        entries = _entries(wire.get("e"), prev_index, prev_term, term)
        return Append(frm, to, term, prev_index, prev_term, _uint(wire, "c"), entries)
    if t == APPEND_RESP:
        reject = _bool(wire, "rj")
        hint_index = _uint(wire, "hi") if reject else 0
        hint_term = _uint(wire, "ht") if reject else 0
        return AppendResponse(frm, to, term, _uint(wire, "i"), reject, hint_index, hint_term)
    if t == HEARTBEAT:
        return Heartbeat(frm, to, term, _uint(wire, "c"), _uint(wire, "rs"))
    if t == HEARTBEAT_RESP:
        return HeartbeatResponse(frm, to, term, _uint(wire, "rs"), _uint(wire, "c"))
    if t == SNAPSHOT:
        return _snapshot_chunk(wire, frm, to, term)
    if t == SNAPSHOT_RESP:
        return SnapshotResponse(
            frm, to, term, _uint(wire, "si"), _uint(wire, "o", MAX_SNAPSHOT_SIZE), _bool(wire, "dn")
        )
    if t == READ_INDEX:
        return ReadIndexRequest(frm, to, term, _context(wire))
    if t == READ_INDEX_RESP:
        return ReadIndexResponse(frm, to, term, _context(wire), _uint(wire, "i"))
    raise DecodeError(f"unknown raft message type {t!r}")


def _uint(wire: dict[str, Any], name: str, limit: int = MAX_INDEX) -> int:
    value = wire.get(name)
    if type(value) is not int or not 0 <= value <= limit:
        raise DecodeError(f"{name}: must be an integer in 0..{limit}")
    return value


def _bool(wire: dict[str, Any], name: str) -> bool:
    value = wire.get(name)
    if type(value) is not bool:
        raise DecodeError(f"{name}: must be a boolean")
    return value


def _bytes(value: Any, name: str, limit: int) -> bytes:
    if type(value) is not bytes or len(value) > limit:
        raise DecodeError(f"{name}: must be at most {limit} bytes")
    return value


def _context(wire: dict[str, Any]) -> bytes:
    return _bytes(wire.get("x"), "x", MAX_CONTEXT_BYTES)


def _entries(value: Any, prev_index: int, prev_term: int, term: int) -> tuple[Entry, ...]:
    """Entries numbered from prev_index + 1, whose terms never fall and never pass `term`."""
    if not isinstance(value, list | tuple) or len(value) > MAX_APPEND_ENTRIES:
        raise DecodeError(f"e: must be a list of at most {MAX_APPEND_ENTRIES} entries")
    if prev_index + len(value) > MAX_INDEX:
        raise DecodeError("e: entry indexes out of range")
    entries = []
    last_term = prev_term
    for offset, item in enumerate(value, start=1):
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise DecodeError("e: an entry must be [term, kind, data]")
        entry_term, entry_kind, data = item
        if type(entry_term) is not int or not last_term <= entry_term <= term or entry_term < 1:
            raise DecodeError("e: entry terms must be >= 1, never fall, and not pass the term")
        if type(entry_kind) is not int or entry_kind not in (EntryKind.NORMAL, EntryKind.CONF):
            raise DecodeError("e: entry kind must be 0 (normal) or 1 (conf)")
        data = _bytes(data, "e", MAX_ENTRY_BYTES)
        if entry_kind == EntryKind.CONF:
            decode_conf_change(data)
        entries.append(Entry(prev_index + offset, entry_term, EntryKind(entry_kind), data))
        last_term = entry_term
    return tuple(entries)


def _snapshot_chunk(wire: dict[str, Any], frm: str, to: str, term: int) -> SnapshotChunk:
    index, snap_term = _uint(wire, "si"), _uint(wire, "st")
    voters = node_list(wire.get("v"), "v")
    learners = node_list(wire.get("l"), "l")
    if set(voters) & set(learners):
        raise DecodeError("v, l: a node cannot be both voter and learner")
    if snap_term > term or (index == 0) != (snap_term == 0):
        raise DecodeError("si, st: snapshot index and term out of range")
    offset = _uint(wire, "o", MAX_SNAPSHOT_SIZE)
    size = _uint(wire, "n", MAX_SNAPSHOT_SIZE)
    data = _bytes(wire.get("d"), "d", MAX_CHUNK_BYTES)
    if offset + len(data) > size:
        raise DecodeError("o, n, d: chunk runs past the snapshot's size")
    conf = ConfState(frozenset(voters), frozenset(learners))
    return SnapshotChunk(frm, to, term, SnapshotMeta(index, snap_term, conf), offset, size, data)
