"""A change to a set of 100,000 members costs about what it costs on a set of one.

Cost is measured as bytes the process writes to the LMDB files during the
commit (`wchar` of /proc/self/io: LMDB writes dirty pages with pwrite when the
map is not writable), never as time. Rewriting the whole set would write
megabytes; touching only the changed members writes a handful of pages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Delete, Merge, Op, SAdd, SRem

from .support import T0, ok, view

BIG = 100_000
PER_OP = 10_000

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io to count written bytes"
)


def _written() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def _bytes_written(store: Store, op: Op, now: int) -> int:
    before = _written()
    ok(store, op, now)
    return _written() - before


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory):
    store = Store(tmp_path_factory.mktemp("big"), StoreConfig(sync=False))
    for batch in range(BIG // PER_OP):
        members = [f"member-{batch}-{i:05d}" for i in range(PER_OP)]
        ok(store, SAdd("default", "big", members), T0 + batch)
    ok(store, SAdd("default", "small", ["only"]), T0 + 100)
    yield store
    store.close()


def test_the_big_set_holds_every_member(big_store: Store) -> None:
    with big_store.read() as txn:
        assert len(big_store.members("default", "big", txn)) == BIG
    assert big_store.ns_stats("default")["entries"] == 2


@pytest.mark.parametrize(
    "make_op",
    [
        lambda key, i: SAdd("default", key, [f"new-{i}"]),
        lambda key, i: SRem("default", key, [f"new-{i}"]),
    ],
    ids=["sadd", "srem"],
)
def test_changing_one_member_writes_about_as_much_for_a_huge_set_as_for_a_tiny_one(
    big_store: Store, make_op
) -> None:
    page = big_store.env.stat()["psize"]
    big_bytes = big_store.ns_stats("default")["bytes"]
    assert big_bytes > 4_000_000  # rewriting the set would write megabytes
    small, big = [], []
    for i in range(5):
        now = T0 + 1000 + i
        small.append(_bytes_written(big_store, make_op("small", i), now))
        big.append(_bytes_written(big_store, make_op("big", i), now))
    assert max(big) <= 2 * max(small) + 4 * page, (small, big)
    assert max(big) < big_bytes / 100


def test_merging_a_peers_one_member_delta_touches_only_that_member(big_store: Store) -> None:
    delta = Entry().sadd(make_ts(T0 + 2000), "peer.1", ["from-peer"], None, T0)
    written = _bytes_written(big_store, Merge("default", "big", delta, full=False), T0 + 2000)
    assert written < 20 * big_store.env.stat()["psize"]
    assert "from-peer" in view(big_store, "default", "big", T0 + 2000)["value"]


def test_deleting_the_big_set_hides_every_member(big_store: Store) -> None:
    ok(big_store, Delete("default", "big"), T0 + 3000)
    assert view(big_store, "default", "big", T0 + 3000) is None
    ok(big_store, SAdd("default", "big", ["fresh"]), T0 + 3001)
    assert view(big_store, "default", "big", T0 + 3001)["value"] == ["fresh"]
