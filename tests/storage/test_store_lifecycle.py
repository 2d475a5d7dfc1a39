"""Opening, reopening and copying a store: node identity, the lock, the clock, snapshots."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmnode.errors import BadRequest, NotFound, Unavailable
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store, StoreLocked
from swarmnode.storage.ops import Delete, Incr, Put, SAdd
from swarmnode.storage.snapshot import SnapshotReader

from .support import T0, ok, view


def test_the_node_id_is_kept_across_restarts_and_renewed_when_the_data_is_wiped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data"
    first = Store(path, StoreConfig(sync=False))
    node_id = first.node_id
    assert len(node_id) == 16 and int(node_id, 16) >= 0
    first.close()
    again = Store(path, StoreConfig(sync=False))
    assert again.node_id == node_id
    again.close()
    shutil.rmtree(path)
    fresh = Store(path, StoreConfig(sync=False))
    assert fresh.node_id != node_id
    fresh.close()


def test_two_stores_never_share_a_node_id(tmp_path: Path) -> None:
    ids = set()
    for i in range(20):
        s = Store(tmp_path / str(i), StoreConfig(sync=False))
        ids.add(s.node_id)
        s.close()
    assert len(ids) == 20


def test_a_chosen_id_names_new_data_and_must_match_existing_data(tmp_path: Path) -> None:
    path = tmp_path / "data"
    Store(path, StoreConfig(sync=False), node_id="feedfacecafebeef").close()
    again = Store(path, StoreConfig(sync=False), node_id="feedfacecafebeef")
    assert again.node_id == "feedfacecafebeef"
    again.close()
    with pytest.raises(Unavailable, match="belongs to node feedfacecafebeef"):
        Store(path, StoreConfig(sync=False), node_id="0123456789abcdef")
    # The refused open released the directory: it opens again at once.
    Store(path, StoreConfig(sync=False)).close()


def test_a_second_store_on_the_same_directory_is_refused_with_a_clear_message(
    tmp_path: Path,
) -> None:
    first = Store(tmp_path / "data", StoreConfig(sync=False))
    with pytest.raises(StoreLocked) as refused:
        Store(tmp_path / "data", StoreConfig(sync=False))
    assert refused.value.code == "unavailable"
    message = str(refused.value)
    assert "in use by another swarmnode" in message and str(tmp_path / "data") in message
    ok(first, Put("default", "k", 1))  # the first one is untouched
    first.close()
    Store(tmp_path / "data", StoreConfig(sync=False)).close()  # free again once closed


def test_the_data_directory_is_private(tmp_path: Path) -> None:
    Store(tmp_path / "data", StoreConfig(sync=False)).close()
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_data_and_the_clock_survive_a_reopen(open_store: Callable[..., Store]) -> None:
    store = open_store("s")
    last = ok(store, Put("default", "k", "v"), T0 + 10_000)["ts"]
    ok(store, SAdd("default", "s", ["a", "b"]), T0 + 10_000)
    store.close()
    again = open_store("s")
    assert view(again, "default", "k", T0)["value"] == "v"
    assert view(again, "default", "s", T0)["value"] == ["a", "b"]
    # The physical clock went back 10 s (a reboot, an NTP step): stamps still grow.
    assert ok(again, Put("default", "k", "w"), T0)["ts"] > last
    assert view(again, "default", "k", T0)["value"] == "w"


def test_a_snapshot_is_a_consistent_copy_that_later_writes_do_not_change(
    store: Store, tmp_path: Path
) -> None:
    ok(store, Put("default", "k", "before"))
    ok(store, Incr("default", "c", 7))
    ok(store, SAdd("team", "s", ["a", "b"]))
    ok(store, Put("default", "dead", 1))
    ok(store, Delete("default", "dead"))
    path = store.snapshot("session-1", tmp_path / "snaps")
    ok(store, Put("default", "k", "after"), T0 + 1)
    ok(store, Put("default", "new", 1), T0 + 1)

    with SnapshotReader(path) as snap:
        entries = {(ns, key): e for ns, key, e in snap.entries_of()}
        team = [key for _, key, _ in snap.entries_of("team")]
    assert set(entries) == {("default", "k"), ("default", "c"), ("team", "s"), ("default", "dead")}
    assert entries[("default", "k")].reg.value == "before"
    assert entries[("default", "c")].counter.value() == 7
    assert entries[("team", "s")].orset.members() == ["a", "b"]
    assert not entries[("default", "dead")].visible(T0)
    assert team == ["s"]


def test_persisting_the_same_session_again_replaces_the_snapshot(
    store: Store, tmp_path: Path
) -> None:
    snaps = tmp_path / "snaps"
    ok(store, Put("default", "k", 1))
    store.snapshot("s", snaps)
    ok(store, Put("default", "k", 2), T0 + 1)
    path = store.snapshot("s", snaps)
    with SnapshotReader(path) as snap:
        [(_, _, entry)] = list(snap.entries_of("default"))
    assert entry.reg.value == 2
    assert sorted(p.name for p in snaps.iterdir()) == ["s"]


@pytest.mark.parametrize("session_id", ["", "../escape", "a/b", ".hidden", "x" * 129, 5, None])
def test_snapshot_names_that_could_escape_or_collide_are_refused(
    store: Store, tmp_path: Path, session_id
) -> None:
    with pytest.raises(BadRequest):
        store.snapshot(session_id, tmp_path / "snaps")
    assert not (tmp_path / "escape").exists()


def test_reading_a_missing_snapshot_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        SnapshotReader(tmp_path / "nothing")


def test_a_full_store_refuses_writes_loses_nothing_and_grows_with_a_bigger_map(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data"
    small = Store(path, StoreConfig(sync=False, map_size=1 << 20))
    acked: dict[str, int] = {}
    refused = None
    for i in range(2000):
        res = small.apply([Put("default", f"k{i}", {"i": i, "pad": "x" * 2000})], T0 + i)[0]
        if res.error is not None:
            refused = res.error
            break
        acked[f"k{i}"] = i
    assert isinstance(refused, Unavailable) and "map_size" in refused.message
    assert acked, "the map should hold some writes before it fills"
    again = small.apply([Incr("default", "n", 1)], T0 + 5000)[0]
    assert isinstance(again.error, Unavailable)
    assert all(view(small, "default", k, T0 + 5000)["value"]["i"] == i for k, i in acked.items())
    seq = small.seq
    small.close()

    bigger = Store(path, StoreConfig(sync=False, map_size=64 << 20))
    try:
        assert bigger.seq == seq
        assert all(
            view(bigger, "default", k, T0 + 6000)["value"]["i"] == i for k, i in acked.items()
        )
        assert ok(bigger, Incr("default", "n", 1), T0 + 6000)["value"] == 1
    finally:
        bigger.close()
