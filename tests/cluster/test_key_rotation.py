"""Rotating the cluster key on running nodes, by the three steps of transport/keyring.py.

Each node has its own key file, rewritten and reloaded (SIGHUP) node by node
as an operator would: add the new key second everywhere, move it first
everywhere, drop the old one everywhere. The cluster must keep replicating at
every step without refusing a single packet, and end up refusing the old key.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from swarmnode.crdt import Entry, LWWRegister, encode_entry, make_ts
from swarmnode.transport import Keyring, generate_key_file, pack_messages, seal_envelope

from .procs import Cluster, read_value, wait_for

NS = "default"


def key_file(path: Path, *sources: Path) -> Path:
    """A key file holding the keys of `sources`, in that order."""
    path.write_bytes(b"".join(s.read_bytes() for s in sources))
    path.chmod(0o600)
    return path


def reloads(cluster: Cluster, i: int) -> int:
    return cluster.nodes[i].log().count("event=key_reloaded")


def step(cluster: Cluster, keys: Path, label: str) -> None:
    """Give every node `keys`, one after the other, and check a write of each spreads."""
    for i in cluster.indexes():
        before = reloads(cluster, i)
        cluster.rekey([i], keys)
        wait_for(lambda i=i, before=before: reloads(cluster, i) > before, f"node {i} to reload")
        cluster.client(i).put(NS, f"{label}-{i}", i)
        cluster.wait_everywhere(
            read_value(NS, f"{label}-{i}"), lambda v, i=i: v == i, f"{label}: node {i}'s write"
        )


def dropped_auth(cluster: Cluster) -> list[int]:
    return [cluster.stats(i)["transport"]["dropped_auth"] for i in cluster.indexes()]


def test_the_key_rotates_on_a_running_cluster_without_refusing_a_packet(
    make_cluster: Any, scratch: Path
) -> None:
    cluster: Cluster = make_cluster(3, keyed=True)
    assert cluster.master_key is not None
    old, new = cluster.master_key, scratch / "new.key"
    generate_key_file(new)
    drops = dropped_auth(cluster)

    step(cluster, key_file(scratch / "both-old-first", old, new), "added")
    step(cluster, key_file(scratch / "both-new-first", new, old), "promoted")
    step(cluster, key_file(scratch / "new-only", new), "retired")
    assert dropped_auth(cluster) == drops

    target = cluster.nodes[0].gossip
    assert target is not None
    host, port = target.rsplit(":", 1)
    now = make_ts(int(time.time() * 1000))
    stale = Entry(now, reg=LWWRegister(now, "old-key-holder", "stale"))
    message = {"t": "d.deltas", "ds": [[NS, "sealed-with-old", encode_entry(stale)]]}
    packet = seal_envelope(pack_messages([message], 1300).datagrams[0], Keyring.from_file(old))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, (host, int(port)))
    wait_for(
        lambda: cluster.stats(0)["transport"]["dropped_auth"] == drops[0] + 1,
        "the retired key to be refused",
    )
