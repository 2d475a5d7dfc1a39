"""This node's partitions: what it owns, and what it waits for after a view change."""

from __future__ import annotations

from swarmnode.placement.partitions import PartitionMap
from swarmnode.placement.plan import Sharding
from swarmnode.placement.rendezvous import ranked

NS = {"mem": Sharding(64, 2)}


def test_a_restarted_node_waits_for_nothing_it_owned() -> None:
    m = PartitionMap("a", 16, 4, view=("a", "b", "c"))
    m.set_namespaces(0.0, NS, fill=False)
    assert not m.filling
    assert m.owned("mem")
    assert all(m.ready("mem", p) for p in m.owned("mem"))


def test_a_new_node_waits_for_everything_it_owns_in_its_first_view() -> None:
    m = PartitionMap("d", 16, 4)
    m.set_namespaces(0.0, NS, fill=False)
    m.set_view(1.0, ("a", "b", "c", "d"))
    assert {p for _, p in m.filling} == set(m.owned("mem"))
    assert not any(m.ready("mem", p) for p in m.owned("mem"))


def test_a_join_makes_the_newcomers_partitions_filling_and_nothing_else() -> None:
    m = PartitionMap("a", 16, 4, view=("a", "b", "c"))
    m.set_namespaces(0.0, NS, fill=False)
    before = set(m.owned("mem"))
    moves = m.set_view(1.0, ("a", "b", "c", "d"))
    assert all(move.gained == ("d",) for move in moves)
    assert not m.filling  # "a" gained nothing
    assert set(m.owned("mem")) <= before


def test_a_death_makes_the_survivors_new_partitions_filling() -> None:
    m = PartitionMap("a", 16, 4, view=("a", "b", "c", "d"))
    m.set_namespaces(0.0, NS, fill=False)
    before = set(m.owned("mem"))
    m.set_view(1.0, ("a", "b", "c"))
    gained = set(m.owned("mem")) - before
    assert gained
    assert {p for _, p in m.filling} == gained
    for p in gained:
        assert m.filled("mem", p)
    assert not m.filling


def test_fill_sources_are_the_other_owners_and_the_next_ranked() -> None:
    m = PartitionMap("a", 16, 4, view=("a", "b", "c", "d", "e"))
    m.set_namespaces(0.0, NS, fill=False)
    for p in range(64):
        sources = m.fill_sources("mem", p)
        assert "a" not in sources
        assert set(m.owners("mem", p)) - {"a"} <= set(sources)
        top = ranked("mem", p, ["a", "b", "c", "d", "e"])[:3]
        assert sources == [n for n in top if n != "a"]


def test_tree_nodes_map_to_their_partitions() -> None:
    m = PartitionMap("a", 16, 4, view=("a",))
    m.set_namespaces(0.0, {"x": Sharding(256, 1), "y": Sharding(32, 1)}, fill=False)
    assert m.partition_level("x") == 2
    assert m.partitions_under("x", 2, 200) == range(200, 201)
    assert m.partitions_under("x", 3, 200 * 16 + 5) == range(200, 201)
    assert m.partitions_under("x", 1, 3) == range(48, 64)
    assert m.partitions_under("x", 0, 0) == range(256)
    assert m.nodes("y", 3) == [(2, i) for i in range(24, 32)]
    assert m.partitions_under("y", 2, 27) == range(3, 4)


def test_covering_nodes_name_whole_subtrees_by_their_root() -> None:
    m = PartitionMap("a", 16, 4, view=("a",))
    m.set_namespaces(0.0, {"x": Sharding(256, 1), "y": Sharding(32, 1)}, fill=False)
    assert m.covering_nodes("x", set(range(256))) == [(0, 0)]
    assert m.covering_nodes("x", set(range(16, 32)) | {40}) == [(1, 1), (2, 40)]
    assert m.covering_nodes("y", {3}) == [(2, i) for i in range(24, 32)]
    assert m.covering_nodes("y", {2, 3}) == [(1, 1)]
    assert m.covering_nodes("x", set()) == []
