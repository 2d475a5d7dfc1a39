"""The procedures of docs/OPERATIONS.md, done step by step on real nodes with the real CLI.

Each test follows one written procedure (backup by persist and restore,
backup by copying a stopped node's data directory, a rolling upgrade, and
recovering a node whose disk died) with the commands an operator types, so
the page cannot drift from what works.
"""

from __future__ import annotations

import json
import shutil

from nodeproc import remove_dir, run_cli

from .procs import Cluster, read_value, wait_for

NS = "default"


def cli(cluster: Cluster, i: int, *args: str) -> dict:
    done = run_cli(*args, "--json", socket_path=cluster.nodes[i].socket)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_persist_then_restore_brings_back_the_snapshot_values(make_cluster) -> None:
    cluster = make_cluster(1)
    cli(cluster, 0, "put", NS, "plan", "v1")
    snap = cli(cluster, 0, "persist", "before-refactor")
    assert snap["bytes"] > 0
    cli(cluster, 0, "put", NS, "plan", "v2")
    cli(cluster, 0, "put", NS, "later", "kept")
    restored = cli(cluster, 0, "restore", "before-refactor")
    assert restored["restored"] >= 1 and restored["failed"] == 0
    assert cli(cluster, 0, "get", NS, "plan")["value"] == "v1"
    assert cli(cluster, 0, "get", NS, "later")["value"] == "kept"


def test_a_copy_of_a_stopped_nodes_data_directory_restores_the_node(make_cluster, scratch) -> None:
    """The copy brings the node back under its own id; its peers then hand it what
    was written after the copy, so restoring one node loses nothing acknowledged."""
    cluster = make_cluster(2)
    cli(cluster, 0, "put", NS, "k", "backed-up")
    node_id = cluster.nodes[0].node_id
    data = cluster.nodes[0].data_dir
    cluster.stop(0)  # 1. stop the node
    backup = scratch / "backup"
    shutil.copytree(data, backup, symlinks=True)  # 2. copy the whole directory
    cluster.restart(0)
    cli(cluster, 0, "put", NS, "k", "written-after")
    cluster.wait_everywhere(read_value(NS, "k"), lambda v: v == "written-after", "the write")
    cluster.stop(0)  # restore: stop, put the copy back, start
    remove_dir(data)
    shutil.copytree(backup, data, symlinks=True)
    cluster.restart(0)
    assert cluster.nodes[0].node_id == node_id
    cluster.wait_everywhere(read_value(NS, "k"), lambda v: v == "written-after", "catch-up")


def test_a_rolling_upgrade_restarts_one_node_at_a_time_and_each_catches_up(make_cluster) -> None:
    cluster = make_cluster(3)
    for i in range(3):
        cluster.stop(i)  # systemctl stop (SIGTERM: the node leaves gracefully)
        others = [j for j in range(3) if j != i]
        cluster.wait_state(i, "left", others)
        cluster.client(others[0]).put(NS, f"during-{i}", i)
        cluster.restart(i)  # the new version starts on the same data directory
        cluster.wait_all_alive()
        cluster.wait_everywhere(read_value(NS, f"during-{i}"), lambda v, i=i: v == i, "catch-up")


def test_a_node_whose_disk_died_comes_back_empty_under_a_new_id_and_refills(
    make_cluster,
) -> None:
    cluster = make_cluster(3)
    for n in range(20):
        cluster.client(n % 3).put(NS, f"k{n}", n)
    cluster.wait_everywhere(read_value(NS, "k19"), lambda v: v == 19, "k19 everywhere")
    old_id = cluster.nodes[2].node_id
    cluster.kill(2)  # the disk dies with the host
    remove_dir(cluster.nodes[2].data_dir)  # a new, empty disk
    cluster.restart(2)  # same address and --join as before
    assert cluster.nodes[2].node_id != old_id
    wait_for(
        lambda: all(cluster.client(2).get(NS, f"k{n}")["value"] == n for n in range(20)),
        "the new node to hold every key",
    )
    wait_for(
        lambda: all(cluster.members(i).get(old_id, {}).get("state") == "dead" for i in (0, 1)),
        "the old id declared dead",
    )
