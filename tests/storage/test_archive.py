"""Archiving inside the store: local to one replica, invisible to anti-entropy, lossless.

An archived (stale) entry leaves the live store but keeps its Merkle row with
the same digest, so a replica holding it live sees no difference and sends
nothing; a state arriving for it (a newer write elsewhere) first puts the
archived state back, so nothing the archive held is lost in the join; a peer
asking for its state is served from the archive.
"""

from __future__ import annotations

from swarmnode.archive import records as R
from swarmnode.crdt.codec import encode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import DefineNs, Incr, Merge, Put, SAdd

from .support import T0, apply, assert_counts_exact, ok, view


def archive(store: Store, ns: str, keys: list[str], now: int = T0) -> int:
    """Archive `keys` as the archiver does: states into a segment, then the engine moves them."""
    segments = R.segments_of(store.engine)
    digests = dict(store.digests(ns))
    states = [encode_entry(store.get(ns, k)) for k in keys]
    pointers, frame = segments.append(states)
    items = [
        R.StaleItem(k, digests[k], p, len(s), frame // len(keys))
        for k, p, s in zip(keys, pointers, states, strict=True)
    ]
    return ok(store, R.ArchiveStale(ns, items), now)["archived"]


def fill(store: Store) -> dict[str, Entry]:
    ok(store, DefineNs("notes", {"dim": 2}))
    ok(store, Put("notes", "a", {"text": "alpha"}, meta={"m": 1}, vector=[1, 0], agent="ann"))
    ok(store, Incr("notes", "c", 5, agent="ann"))
    ok(store, SAdd("notes", "s", ["x", "y", "z"], agent="bob"))
    return {k: store.get("notes", k) for k in ("a", "c", "s")}


def test_archiving_keeps_the_merkle_digests_and_leaves_the_live_store(store) -> None:
    before = fill(store)
    digests = dict(store.digests("notes"))
    usage = dict(store.catalog.usage)
    assert archive(store, "notes", ["a", "c", "s"]) == 3
    assert dict(store.digests("notes")) == digests
    assert all(view(store, "notes", k, T0) is None for k in before)
    assert store.ns_stats("notes")["entries"] == 0
    assert store.catalog.usage == {} and usage
    assert_counts_exact(store, T0)
    # A peer lacking the entries is served their states from the archive.
    served = dict(store.states("notes", ["a", "c", "s"]))
    assert served == {k: encode_entry(e) for k, e in before.items()}


def test_restoring_gives_back_the_same_states_counts_and_usage(store) -> None:
    before = fill(store)
    usage = dict(store.catalog.usage)
    archive(store, "notes", ["a", "c", "s"])
    assert ok(store, R.Unarchive("notes", ["a", "c", "s"]))["restored"] == 3
    assert {k: store.get("notes", k) for k in before} == before
    assert dict(store.catalog.usage) == usage
    assert_counts_exact(store, T0)


def test_a_newer_state_from_a_peer_joins_the_archived_one_and_loses_nothing(open_store) -> None:
    a, b = open_store("a"), open_store("b")
    fill(a)
    state = a.get("notes", "s")
    ok(b, DefineNs("notes", {"dim": 2}))
    ok(b, Merge("notes", "s", state, full=True))
    archive(a, "notes", ["s"])
    # b adds a member; its delta reaches a, whose copy is archived.
    result = apply(b, SAdd("notes", "s", ["w"]), T0 + 10)
    [change] = result.changes
    assert ok(a, Merge("notes", "s", change.delta, full=False), T0 + 10) == {"applied": True}
    assert a.get("notes", "s").orset.members() == ["w", "x", "y", "z"]
    assert a.states("notes", ["s"]) == b.states("notes", ["s"])
    assert dict(a.digests("notes"))["s"] == dict(b.digests("notes"))["s"]
    assert_counts_exact(a, T0 + 10)


def test_a_write_to_an_archived_key_applies_to_the_whole_entry(store) -> None:
    fill(store)
    archive(store, "notes", ["c"])
    assert ok(store, Incr("notes", "c", 2), T0 + 5)["value"] == 7


def test_an_entry_written_after_it_was_read_for_archiving_stays_live(store) -> None:
    fill(store)
    segments = R.segments_of(store.engine)
    digest = dict(store.digests("notes"))["a"]
    state = encode_entry(store.get("notes", "a"))
    ok(store, Put("notes", "a", "newer"), T0 + 1)
    [pointer], _ = segments.append([state])
    result = ok(store, R.ArchiveStale("notes", [R.StaleItem("a", digest, pointer, 1, 1)]), T0 + 2)
    assert result == {"archived": 0, "skipped": 1}
    assert view(store, "notes", "a", T0 + 2)["value"] == "newer"


def test_a_merge_of_an_old_duplicate_leaves_the_archived_entry_as_it_was(store) -> None:
    fill(store)
    old = Entry().put_lww(make_ts(T0 - 1000), "peer", "older")
    archive(store, "notes", ["a"])
    assert ok(store, Merge("notes", "a", old, full=True), T0 + 5) == {"applied": False}
    assert view(store, "notes", "a", T0 + 5)["value"] == {"text": "alpha"}
