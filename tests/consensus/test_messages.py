"""The wire codec: every message survives encode -> msgpack -> decode unchanged, and
whatever a peer sends that is not a valid message raises `DecodeError` and nothing else."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.consensus import messages as mm
from swarmnode.consensus.records import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    SnapshotMeta,
    decode_conf_change,
    encode_conf_change,
)
from swarmnode.errors import DecodeError

ids = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=12)
uints = st.integers(0, mm.MAX_INDEX)
small = st.integers(0, 1000)
conf_changes = st.one_of(
    st.builds(ConfChange, st.sampled_from(["add_voter", "add_learner", "remove"]), ids),
    st.lists(ids, min_size=1, max_size=5, unique=True).map(
        lambda v: ConfChange("init", None, tuple(sorted(v)))
    ),
)


@st.composite
def appends(draw):
    term = draw(st.integers(1, 50))
    prev_index = draw(small)
    prev_term = draw(st.integers(0, term))
    entries = []
    last = max(prev_term, 1)
    for i in range(draw(st.integers(0, 6))):
        entry_term = draw(st.integers(last, term))
        last = entry_term
        if draw(st.booleans()):
            data = encode_conf_change(draw(conf_changes))
            entries.append(Entry(prev_index + 1 + i, entry_term, EntryKind.CONF, data))
        else:
            data = draw(st.binary(max_size=40))
            entries.append(Entry(prev_index + 1 + i, entry_term, EntryKind.NORMAL, data))
    return mm.Append(draw(ids), draw(ids), term, prev_index, prev_term, draw(small), tuple(entries))


@st.composite
def chunks(draw):
    term = draw(st.integers(1, 50))
    voters = draw(st.lists(ids, max_size=5, unique=True))
    learners = [n for n in draw(st.lists(ids, max_size=3, unique=True)) if n not in voters]
    index = draw(st.integers(1, 1000))
    meta = SnapshotMeta(
        index, draw(st.integers(1, term)), ConfState(frozenset(voters), frozenset(learners))
    )
    data = draw(st.binary(max_size=64))
    offset = draw(small)
    size = offset + len(data) + draw(small)
    return mm.SnapshotChunk(draw(ids), draw(ids), term, meta, offset, size, data)


every_message = st.one_of(
    st.builds(mm.VoteRequest, ids, ids, uints, uints, uints, st.booleans()),
    st.builds(mm.VoteResponse, ids, ids, uints, st.booleans(), st.booleans()),
    appends(),
    st.builds(mm.AppendResponse, ids, ids, uints, uints, st.just(False)),
    st.builds(mm.AppendResponse, ids, ids, uints, uints, st.just(True), uints, uints),
    st.builds(mm.Heartbeat, ids, ids, uints, uints, uints),
    st.builds(mm.HeartbeatResponse, ids, ids, uints, uints, uints),
    chunks(),
    st.builds(mm.SnapshotResponse, ids, ids, uints, uints, st.integers(0, 2**40), st.booleans()),
    st.builds(mm.ReadIndexRequest, ids, ids, uints, st.binary(max_size=mm.MAX_CONTEXT_BYTES)),
    st.builds(mm.ReadIndexResponse, ids, ids, uints, st.binary(max_size=64), uints),
)


@given(every_message)
def test_every_message_survives_the_wire(msg):
    wire = msgpack.unpackb(msgpack.packb(mm.encode(msg)), raw=False)
    assert wire["t"].startswith("raft.")
    assert mm.decode(wire) == msg


@given(conf_changes)
def test_configuration_changes_survive_their_encoding(change):
    assert decode_conf_change(encode_conf_change(change)) == change


def _valid_append() -> dict:
    return mm.encode(mm.Append("a", "b", 3, 4, 2, 4, (Entry(5, 2, EntryKind.NORMAL, b"x"),)))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda w: w.update(t="raft.nope"), "unknown type"),
        (lambda w: w.pop("term"), "missing term"),
        (lambda w: w.update(term=-1), "negative term"),
        (lambda w: w.update(term=True), "a boolean is not an integer"),
        (lambda w: w.update(term=2**64), "term beyond int64"),
        (lambda w: w.update(f=""), "empty sender"),
        (lambda w: w.update(to="x" * 65), "recipient id too long"),
        (lambda w: w.update(e=[[2, 0, b"x"]] * (mm.MAX_APPEND_ENTRIES + 1)), "too many entries"),
        (lambda w: w.update(e=[[2, 0, "text"]]), "entry data must be bytes"),
        (lambda w: w.update(e=[[2, 7, b"x"]]), "unknown entry kind"),
        (lambda w: w.update(e=[[1, 0, b"x"]]), "entry term below the previous entry's"),
        (lambda w: w.update(e=[[4, 0, b"x"]]), "entry term above the message's term"),
        (lambda w: w.update(e=[[3, 0, b"x"], [2, 0, b"y"]]), "entry terms fall"),
        (lambda w: w.update(e=[[2, 1, b"\xc1"]]), "conf entry that is not msgpack"),
        (lambda w: w.update(e=[[2, 1, msgpack.packb({"op": "steal"})]]), "unknown conf op"),
        (lambda w: w.update(e=[[2, 0, b"x" * (mm.MAX_ENTRY_BYTES + 1)]]), "entry too large"),
        (lambda w: w.update(e={"not": "a list"}), "entries not a list"),
        (lambda w: w.update(pi=mm.MAX_INDEX), "entry indexes past the maximum"),
    ],
)
def test_malformed_appends_are_refused(change, why):
    wire = _valid_append()
    change(wire)
    with pytest.raises(DecodeError):
        mm.decode(wire)


def test_malformed_snapshot_chunks_and_reads_are_refused():
    meta = SnapshotMeta(5, 2, ConfState(frozenset({"a"}), frozenset({"b"})))
    good = mm.encode(mm.SnapshotChunk("a", "b", 3, meta, 0, 10, b"12345"))
    assert mm.decode(good).size == 10
    for change in (
        {"o": 8},
        {"n": 2},
        {"l": ["a"]},
        {"v": ["a", "a"]},
        {"st": 4},
        {"d": b"x" * (mm.MAX_CHUNK_BYTES + 1)},
        {"n": mm.MAX_SNAPSHOT_SIZE + 1},
    ):
        with pytest.raises(DecodeError):
            mm.decode({**good, **change})
    read = mm.encode(mm.ReadIndexRequest("a", "b", 1, b"ctx"))
    with pytest.raises(DecodeError):
        mm.decode({**read, "x": b"c" * (mm.MAX_CONTEXT_BYTES + 1)})
    with pytest.raises(DecodeError):
        mm.decode([read])


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


FIELDS = ["f", "to", "term", "e", "pi", "c", "i", "rj", "si", "o", "n", "d", "x", "v", "rs", "li"]


@given(every_message, st.sampled_from(FIELDS), json_like)
def test_any_corruption_of_a_field_raises_decode_error_or_decodes(msg, field, value):
    """A hostile peer may send anything: the only failure decode may show is DecodeError,
    and what it accepts re-encodes to a valid message."""
    wire = mm.encode(msg)
    wire[field] = value
    try:
        decoded = mm.decode(wire)
    except DecodeError:
        return
    assert mm.decode(mm.encode(decoded)) == decoded
