"""Lifeguard's timers and SWIM's piggyback queue, as the papers state them."""

from __future__ import annotations

import math

import msgpack
import pytest

from swarmnode.membership.awareness import Awareness
from swarmnode.membership.broadcasts import TransmitQueue, retransmit_limit
from swarmnode.membership.suspicion import Suspicion, suspicion_bounds


@pytest.mark.parametrize(
    ("live", "scale"), [(1, 1.0), (5, 1.0), (10, 1.0), (100, 2.0), (1000, 3.0)]
)
def test_suspicion_timeout_grows_with_the_log_of_the_cluster_size(live, scale):
    shortest, longest = suspicion_bounds(4, 6, live, 1.0)
    assert shortest == pytest.approx(4 * scale)
    assert longest == pytest.approx(6 * shortest)


def test_suspicion_starts_at_the_longest_and_shrinks_to_the_shortest_with_confirmations():
    suspicion = Suspicion(100.0, "a", shortest=4.0, longest=24.0, expected=3)
    deadlines = [suspicion.deadline]
    for by in ["b", "c", "d"]:
        assert suspicion.confirm(by)
        deadlines.append(suspicion.deadline)
    assert deadlines[0] == 124.0
    assert deadlines == sorted(deadlines, reverse=True) and len(set(deadlines)) == 4
    assert deadlines[-1] == pytest.approx(104.0)
    assert not suspicion.confirm("e")
    assert suspicion.deadline == pytest.approx(104.0)


def test_repeated_confirmations_from_one_member_count_once():
    suspicion = Suspicion(0.0, "a", shortest=4.0, longest=24.0, expected=3)
    assert not suspicion.confirm("a")
    assert suspicion.confirm("b")
    after_b = suspicion.deadline
    assert not suspicion.confirm("b")
    assert suspicion.deadline == after_b


def test_a_cluster_too_small_to_confirm_uses_the_shortest_timeout():
    suspicion = Suspicion(0.0, "a", shortest=4.0, longest=24.0, expected=0)
    assert suspicion.deadline == 4.0
    assert not suspicion.confirm("b")


def test_local_health_stretches_timers_within_its_bounds():
    awareness = Awareness(max_multiplier=8)
    assert awareness.scale(0.5) == 0.5
    awareness.apply(100)
    assert awareness.score == 7 and awareness.scale(0.5) == 4.0
    awareness.apply(-3)
    assert awareness.score == 4
    awareness.apply(-100)
    assert awareness.score == 0


@pytest.mark.parametrize(("live", "times"), [(1, 4), (9, 4), (10, 8), (99, 8), (100, 12)])
def test_each_fact_is_retransmitted_a_number_of_times_growing_with_log_n(live, times):
    assert retransmit_limit(4, live) == times == 4 * math.ceil(math.log10(live + 1))


def fact(node_id: str, incarnation: int = 0, pad: int = 0) -> dict:
    return {"n": node_id, "i": incarnation, "s": 0, "a": ["127.0.0.1", 1], "m": {"p": "x" * pad}}


def test_a_queued_fact_is_sent_exactly_limit_times():
    queue = TransmitQueue()
    queue.push("a", fact("a"))
    sent = 0
    while queue:
        assert queue.take(1000, limit=5) == [fact("a")]
        sent += 1
    assert sent == 5 and queue.take(1000, limit=5) == []


def test_a_newer_fact_about_a_member_replaces_the_queued_one():
    queue = TransmitQueue()
    queue.push("a", fact("a", 1))
    queue.take(1000, limit=5)
    queue.push("a", fact("a", 2))
    assert len(queue) == 1
    assert queue.take(1000, limit=5) == [fact("a", 2)]


def test_facts_sent_least_go_first_and_every_take_fits_its_budget():
    queue = TransmitQueue()
    for i in range(40):
        queue.push(f"m{i}", fact(f"m{i}", pad=i * 3))
    budget = 300
    rounds = []
    while queue:
        taken = queue.take(budget, limit=3)
        assert taken
        assert sum(len(msgpack.packb(f)) for f in taken) + 5 <= budget
        rounds.append([f["n"] for f in taken])
    first_pass = [n for batch in rounds[: len(rounds) // 3] for n in batch]
    assert len(set(first_pass)) == len(first_pass)
    counts = {}
    for batch in rounds:
        for n in batch:
            counts[n] = counts.get(n, 0) + 1
    assert set(counts.values()) == {3} and len(counts) == 40
