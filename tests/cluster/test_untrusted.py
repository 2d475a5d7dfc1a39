"""What reaches a keyed node from outside its cluster changes nothing, and is counted.

Packets are crafted by hand with the project's own codec and envelope and sent
from a plain UDP socket to a real node, so each test controls exactly what
arrives: a delta sealed with the cluster key (the control: it is applied), the
same delta stamped too far in the future, sealed with another key, sent in
plaintext, tampered with, or plain garbage. A sealed packet sent a second time
is exactly what an eavesdropper without the key could replay, and one sealed
with an old clock stamp is what it could replay after the replay window. Whole
nodes with the wrong key, or with no key, are started beside the cluster and
must stay out of it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import NodeProcess, remove_dir, short_dir

from swarmnode.crdt import Entry, LWWRegister, encode_entry, make_ts, wall_ms
from swarmnode.errors import NotFound
from swarmnode.transport import Keyring, generate_key_file, pack_messages, seal_envelope

from .procs import Cluster, loopback_hosts, read_value, wait_for

NS = "default"
MAX_OFFSET_MS = 500
"""The store's default `max_clock_offset_ms`."""
FORGER = "forger"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = short_dir("snc-")
    c = Cluster.start(base / "c", 3, keyed=True)
    yield c
    c.close()
    remove_dir(base)


@pytest.fixture(scope="module")
def keyring(cluster: Cluster) -> Keyring:
    assert cluster.master_key is not None
    return Keyring.from_file(cluster.master_key)


@pytest.fixture(scope="module")
def stranger_key() -> Iterator[Path]:
    base = short_dir("snk-")
    path = base / "stranger.key"
    generate_key_file(path)
    yield path
    remove_dir(base)


def now_ms() -> int:
    return int(time.time() * 1000)


def register_delta(key: str, value: Any, ts: int, entry_ts: int | None = None) -> dict[str, Any]:
    """A `d.deltas` message carrying one LWW register write, as a peer would gossip it."""
    entry = Entry(ts if entry_ts is None else entry_ts, reg=LWWRegister(ts, FORGER, value))
    return {"t": "d.deltas", "ds": [[NS, key, encode_entry(entry)]]}


def payload(*messages: dict[str, Any]) -> bytes:
    return pack_messages(list(messages), 1300).datagrams[0]


def send_to(node: NodeProcess, packet: bytes) -> None:
    assert node.gossip is not None
    host, port = node.gossip.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, (host, int(port)))


def counts(cluster: Cluster, i: int) -> dict[str, int]:
    stats = cluster.stats(i)
    return {**stats["transport"], **stats["counters"]}


def wait_counts(cluster: Cluster, i: int, expected: dict[str, int]) -> None:
    wait_for(
        lambda: all(counts(cluster, i).get(k, 0) == v for k, v in expected.items()),
        f"node {i} to count {expected}",
    )


def test_a_delta_sealed_with_the_cluster_key_is_applied_and_spread(
    cluster: Cluster, keyring: Keyring
) -> None:
    send_to(
        cluster.nodes[0],
        seal_envelope(payload(register_delta("forged-ok", 1, make_ts(now_ms()))), keyring),
    )
    cluster.wait_everywhere(read_value(NS, "forged-ok"), lambda v: v == 1, "the crafted delta")


def test_a_timestamp_beyond_the_max_clock_offset_is_rejected_and_counted(
    cluster: Cluster, keyring: Keyring
) -> None:
    before = counts(cluster, 0).get("merge_rejected_clock_skew", 0)
    future = make_ts(now_ms() + 3_600_000)
    send_to(cluster.nodes[0], seal_envelope(payload(register_delta("future", 1, future)), keyring))
    wait_counts(cluster, 0, {"merge_rejected_clock_skew": before + 1})
    assert read_value(NS, "future")(cluster.client(0)) is NotFound
    assert wall_ms(cluster.stats(0)["hlc"]) <= now_ms() + MAX_OFFSET_MS, "the clock was adopted"
    ts = cluster.client(0).put(NS, "after-future", 1)["ts"]
    assert wall_ms(ts) <= now_ms() + MAX_OFFSET_MS


def test_a_register_stamped_beyond_the_offset_inside_an_entry_is_rejected(
    cluster: Cluster, keyring: Keyring
) -> None:
    now = now_ms()
    before = counts(cluster, 0).get("merge_rejected_clock_skew", 0)
    before_bad = counts(cluster, 0).get("dropped_bad_delta", 0)
    msg = register_delta("inner-future", 1, make_ts(now + 3_600_000), entry_ts=make_ts(now))
    send_to(cluster.nodes[0], seal_envelope(payload(msg), keyring))
    wait_for(
        lambda: (
            counts(cluster, 0).get("merge_rejected_clock_skew", 0) > before
            or counts(cluster, 0).get("dropped_bad_delta", 0) > before_bad
            or read_value(NS, "inner-future")(cluster.client(0)) is not NotFound
        ),
        "node 0 to count or apply the crafted delta",
    )
    assert read_value(NS, "inner-future")(cluster.client(0)) is NotFound
    cluster.client(0).put(NS, "inner-future", "a write of now")
    assert read_value(NS, "inner-future")(cluster.client(0)) == "a write of now"


def test_garbage_and_wrongly_sealed_packets_change_nothing_and_are_counted(
    cluster: Cluster, keyring: Keyring, stranger_key: Path
) -> None:
    target = cluster.nodes[0]
    delta = payload(register_delta("smuggled", 1, make_ts(now_ms())))
    stranger = Keyring.from_file(stranger_key)
    sealed = bytearray(seal_envelope(delta, keyring))
    sealed[-1] ^= 0x01
    base = counts(cluster, 0)
    seq = cluster.stats(0)["store"]["seq"]
    members = cluster.members(0)
    packets: list[tuple[str, bytes]] = [
        ("dropped_decode", b"\x07" + os.urandom(200)),  # no such envelope kind
        ("dropped_decode", seal_envelope(os.urandom(300), keyring)),  # not msgpack inside
        ("dropped_auth", seal_envelope(delta, stranger)),  # another cluster's key
        ("dropped_auth", b"\x02" + delta),  # plaintext to a keyed node
        ("dropped_auth", bytes(sealed)),  # tampered ciphertext
        ("dropped_malformed", seal_envelope(payload({"t": "d.deltas", "ds": 7}), keyring)),
        (
            "dropped_bad_delta",
            seal_envelope(
                payload({"t": "d.deltas", "ds": [[NS, "smuggled", b"\x01junk"]]}), keyring
            ),
        ),
        ("dropped_malformed", seal_envelope(payload({"t": "no.such.type"}), keyring)),
    ]
    expected = {name: base.get(name, 0) for name, _ in packets}
    for name, packet in packets:
        send_to(target, packet)
        expected[name] += 1
    wait_counts(cluster, 0, expected)

    assert read_value(NS, "smuggled")(cluster.client(0)) is NotFound
    assert cluster.stats(0)["store"]["seq"] == seq
    assert cluster.members(0).keys() == members.keys()
    assert cluster.client(0).ping()["pong"] is True


def test_a_delete_survives_replays_of_its_put_after_the_tombstone_is_collected(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, keyed=True, config="[store]\ntombstone_grace = 1.0\n")
    assert cluster.master_key is not None
    put = seal_envelope(
        payload(register_delta("resurrect", "v", make_ts(now_ms()))),
        Keyring.from_file(cluster.master_key),
    )
    send_to(cluster.nodes[0], put)
    cluster.wait_everywhere(read_value(NS, "resurrect"), lambda v: v == "v", "the put")
    cluster.client(0).delete(NS, "resurrect")
    cluster.wait_everywhere(read_value(NS, "resurrect"), lambda v: v is NotFound, "the delete")
    for i in cluster.indexes():
        client = cluster.client(i)
        wait_for(
            lambda client=client: client.compact() and client.ns_stats(NS)["tombstones"] == 0,
            f"node {i} to collect the tombstone",
        )

    before = counts(cluster, 0)["datagrams_replayed"]
    for _ in range(3):
        send_to(cluster.nodes[0], put)
    wait_counts(cluster, 0, {"datagrams_replayed": before + 3})
    for i in cluster.indexes():
        assert read_value(NS, "resurrect")(cluster.client(i)) is NotFound


def test_a_delta_stamped_before_the_replay_window_is_refused_and_counted(
    cluster: Cluster, keyring: Keyring
) -> None:
    before = counts(cluster, 0)["datagrams_too_old"]
    old = seal_envelope(
        payload(register_delta("captured-long-ago", 1, make_ts(now_ms()))),
        keyring,
        sent_ms=now_ms() - 60_000,
    )
    send_to(cluster.nodes[0], old)
    wait_counts(cluster, 0, {"datagrams_too_old": before + 1})
    assert read_value(NS, "captured-long-ago")(cluster.client(0)) is NotFound


def joined_stranger(
    launch_node: Callable[..., NodeProcess], seed: NodeProcess, *flags: str
) -> NodeProcess:
    assert seed.gossip is not None
    host = loopback_hosts(1)[0]
    return launch_node(None, *flags, "--join", seed.gossip, bind=f"{host}:0")


def assert_kept_apart(cluster: Cluster, outsider: NodeProcess, label: str) -> None:
    """Neither side knows the other as a member, and neither side's write crossed over."""
    ids = {n.node_id for n in cluster.nodes}
    for i in cluster.indexes():
        assert outsider.node_id not in cluster.members(i)
        assert read_value(NS, f"{label}-outside")(cluster.client(i)) is NotFound
    with outsider.client() as c:
        assert {m["node_id"] for m in c.members()["members"]} & ids == set()
        assert read_value(NS, f"{label}-inside")(c) is NotFound


def test_a_node_with_another_cluster_key_stays_out(
    cluster: Cluster, launch_node: Callable[..., NodeProcess], stranger_key: Path
) -> None:
    before = counts(cluster, 0)["dropped_auth"]
    cluster.client(0).put(NS, "stranger-inside", "stays in the cluster")
    outsider = joined_stranger(
        launch_node, cluster.nodes[0], "--cluster-key-file", str(stranger_key)
    )
    with outsider.client() as c:
        c.put(NS, "stranger-outside", "stays with the stranger")
    wait_for(
        lambda: counts(cluster, 0)["dropped_auth"] >= before + 3,
        "several join attempts of the stranger to be refused",
    )
    assert_kept_apart(cluster, outsider, "stranger")


def test_keyless_and_keyed_nodes_do_not_mix(
    cluster: Cluster, launch_node: Callable[..., NodeProcess]
) -> None:
    before = counts(cluster, 0)["dropped_auth"]
    cluster.client(0).put(NS, "keyless-inside", "sealed")
    keyless = joined_stranger(launch_node, cluster.nodes[0])
    with keyless.client() as c:
        c.put(NS, "keyless-outside", "plaintext")
    wait_for(
        lambda: counts(cluster, 0)["dropped_auth"] >= before + 3,
        "the keyless node's plaintext packets to be refused",
    )
    assert_kept_apart(cluster, keyless, "keyless")

    assert cluster.master_key is not None
    keyed = joined_stranger(launch_node, keyless, "--cluster-key-file", str(cluster.master_key))
    with keyless.client() as c:
        wait_for(
            lambda: c.stats()["transport"]["dropped_auth"] >= 3,
            "the keyless node to refuse a keyed node's sealed packets",
        )
        assert {m["node_id"] for m in c.members()["members"]} == {keyless.node_id}
    with keyed.client() as c:
        assert {m["node_id"] for m in c.members()["members"]} == {keyed.node_id}
