"""Archiving on one real node of a cluster: local, unseen by anti-entropy, and lossless.

Two `swarmnode run` processes. Node 0 archives entries node 1 holds live: an
anti-entropy round between them then repairs nothing (the archived entries
keep their Merkle digests), node 1 keeps serving them, and a newer write on
node 1 reaches node 0 and brings its archived copy back, joined with the write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from swarmnode.errors import NotFound
from tests.cluster.procs import Cluster
from tests.nodeproc import remove_dir, short_dir

WAIT = 60.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    base = short_dir("snr-")
    cluster = Cluster.start(base, 2)
    try:
        yield cluster
    finally:
        cluster.close()
        remove_dir(base)


def eventually(check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            found = check()
        except NotFound:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def test_an_archived_entry_is_neither_resent_nor_lost(cluster: Cluster) -> None:
    with cluster.nodes[0].client() as a, cluster.nodes[1].client() as b:
        a.ns_init("notes", archive_after=1)
        for i in range(20):
            a.put("notes", f"k{i}", {"n": i})
        eventually(lambda: b.get("notes", "k19"))
        b.sync()  # both hold everything, agreed by anti-entropy

        def archived_all() -> bool:  # once the entries are 1 s old (archive_after)
            per_ns = a.compact()["archive"]["namespaces"]
            return per_ns.get("notes", {}).get("entries") == 20

        eventually(archived_all)
        with pytest.raises(NotFound):
            a.get("notes", "k1")
        assert a.sync()["keys_repaired"] == 0
        assert b.get("notes", "k1")["value"] == {"n": 1}
        b.put("notes", "k0", {"n": "newer"})
        assert eventually(lambda: a.get("notes", "k0"))["value"] == {"n": "newer"}
        archived = {i["key"] for i in a.archive_list("notes", limit=100)["items"]}
        assert "k0" not in archived and "k1" in archived
        assert a.archive_restore("notes", prefix="")["restored"] == 19
        assert a.get("notes", "k1")["value"] == {"n": 1}
        assert a.sync()["keys_repaired"] == 0
