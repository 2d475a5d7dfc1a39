"""Rendezvous placement: deterministic, R owners each, and a join or death moves ~R/N."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.placement.plan import Sharding, plan
from swarmnode.placement.rendezvous import owner_table, owners, ranked

node_ids = st.lists(
    st.text("0123456789abcdef", min_size=4, max_size=16), min_size=1, max_size=12, unique=True
)


@given(node_ids, st.integers(1, 5), st.integers(0, 63))
def test_every_partition_has_min_r_n_distinct_owners(members: list[str], r: int, p: int) -> None:
    got = owners("ns", p, members, r)
    assert len(got) == min(r, len(members))
    assert len(set(got)) == len(got)
    assert set(got) <= set(members)


@given(node_ids, st.integers(1, 5), st.randoms(use_true_random=False))
def test_owners_do_not_depend_on_the_order_members_are_listed(members, r, rnd) -> None:
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert owner_table("ns", 32, members, r) == owner_table("ns", 32, shuffled, r)


@given(node_ids, st.integers(1, 4))
def test_r_owners_are_the_top_of_every_larger_r(members: list[str], r: int) -> None:
    # Raising R adds owners; it never reorders the ones there were.
    assert owners("ns", 7, members, r) == tuple(ranked("ns", 7, members)[:r])
    assert owners("ns", 7, members, r + 1)[:r] == owners("ns", 7, members, r)


@given(node_ids, st.integers(1, 3))
def test_all_means_every_member_in_rank_order(members: list[str], p: int) -> None:
    assert set(owners("ns", p, members, None)) == set(members)


def test_namespaces_are_placed_independently() -> None:
    members = [f"node-{i}" for i in range(10)]
    a = owner_table("alpha", 64, members, 2)
    b = owner_table("beta", 64, members, 2)
    assert sum(x == y for x, y in zip(a, b, strict=True)) < 16


def _moved_share(before: list[str], after: list[str], r: int, partitions: int) -> float:
    moves = plan(before, after, {"ns": Sharding(partitions, r)})
    return len(moves) / partitions


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(1, 3))
def test_a_join_moves_only_the_partitions_the_newcomer_takes(n: int, r: int) -> None:
    members = [f"node-{i}" for i in range(n)]
    joined = [*members, "newcomer"]
    moves = plan(members, joined, {"ns": Sharding(1024, r)})
    for move in moves:
        # Every move gives the newcomer a partition, and takes it from one old owner only.
        assert move.gained == ("newcomer",)
        assert len(move.lost) == (1 if n >= r else 0)
    # The newcomer takes its fair share, R/(N+1) of the partitions, and nothing else moves.
    share = len(moves) / 1024
    expected = min(1.0, r / (n + 1))
    assert abs(share - expected) < 0.05 + 3 * (expected / 1024) ** 0.5


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(1, 3), st.integers(0, 19))
def test_a_death_moves_only_the_partitions_the_dead_node_held(n: int, r: int, which: int) -> None:
    members = [f"node-{i}" for i in range(n)]
    dead = members[which % n]
    survivors = [m for m in members if m != dead]
    moves = plan(members, survivors, {"ns": Sharding(1024, r)})
    for move in moves:
        assert move.lost == (dead,)
        assert dead not in move.after
    expected = min(1.0, r / n)
    assert abs(len(moves) / 1024 - expected) < 0.05


def test_load_is_even_across_members() -> None:
    members = [f"node-{i}" for i in range(6)]
    table = owner_table("ns", 256, members, 2)
    held = {m: sum(m in owners for owners in table) for m in members}
    expected = 256 * 2 / 6
    assert all(abs(h - expected) < expected * 0.3 for h in held.values()), held
