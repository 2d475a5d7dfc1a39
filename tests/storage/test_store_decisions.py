"""A decision of the consensus group, written by the engine on every replica.

Replicas of a `consensus` namespace that saw the same siblings write the same
decided version whatever else they hold, so they converge; the losing writes
stay visible with who made them; a write concurrent with the decision is not
covered by it and survives as a new conflict.
"""

from __future__ import annotations

from collections.abc import Callable

from swarmnode.commands.consensus import conflict_of
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Decided, Merge, Put

from .support import T0, ok, view

NS = "decisions"


def share(src: Store, dst: Store, key: str, now: int = T0) -> None:
    """Anti-entropy in one direction: `dst` joins `src`'s whole state of `key`."""
    entry = src.get(NS, key)
    assert entry is not None
    ok(dst, Merge(NS, key, entry, full=True), now)


def decide(store: Store, key: str, proposal: dict, index: int) -> None:
    ok(store, Decided(NS, key, proposal, index, proposal.get("agent")), T0 + 10)


def test_replicas_write_one_decided_version_and_keep_the_losers_visible(
    open_store: Callable[..., Store],
) -> None:
    a, b = open_store("a"), open_store("b")
    ok(a, Put(NS, "plan", "from a", agent="ann"), T0)
    ok(b, Put(NS, "plan", "from b", agent="bob"), T0 + 1)
    share(a, b, "plan")
    share(b, a, "plan")
    before = view(a, NS, "plan", T0 + 5)
    assert before is not None and before["conflict"]

    proposal = conflict_of(NS, "plan", a.get(NS, "plan"), None)
    assert proposal is not None
    assert proposal == conflict_of(NS, "plan", b.get(NS, "plan"), None)
    decide(a, "plan", proposal, 7)
    decide(b, "plan", proposal, 7)

    seen_a, seen_b = view(a, NS, "plan", T0 + 20), view(b, NS, "plan", T0 + 20)
    assert seen_a == seen_b
    assert seen_a is not None
    assert not seen_a["conflict"] and seen_a["decided"] == 7
    assert seen_a["value"] == "from b"  # the newer sibling wins
    assert seen_a["agent"] == "bob"  # the decided version is bob's write
    [loser] = seen_a["rejected"]
    assert loser["value"] == "from a" and loser["agent"] == "ann"
    assert loser["writer"] == a.node_id
    assert dict(a.digests(NS)) == dict(b.digests(NS))


def test_a_replica_that_learns_the_decision_by_gossip_converges_too(
    open_store: Callable[..., Store],
) -> None:
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    ok(a, Put(NS, "plan", "from a"), T0)
    ok(b, Put(NS, "plan", "from b"), T0 + 1)
    share(a, b, "plan")
    proposal = conflict_of(NS, "plan", b.get(NS, "plan"), None)
    assert proposal is not None
    decide(b, "plan", proposal, 3)
    # c held only a's write; the decided state covers it.
    share(a, c, "plan")
    share(b, c, "plan")
    assert dict(b.digests(NS)) == dict(c.digests(NS))
    seen = view(c, NS, "plan", T0 + 20)
    assert seen is not None and not seen["conflict"] and seen["decided"] == 3


def test_a_write_concurrent_with_the_decision_survives_as_a_new_conflict(
    open_store: Callable[..., Store],
) -> None:
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    ok(a, Put(NS, "plan", "from a"), T0)
    ok(b, Put(NS, "plan", "from b"), T0 + 1)
    share(a, b, "plan")
    proposal = conflict_of(NS, "plan", b.get(NS, "plan"), None)
    assert proposal is not None
    decide(b, "plan", proposal, 3)
    # c writes without having seen either write or the decision.
    ok(c, Put(NS, "plan", "from c"), T0 + 2)
    share(c, b, "plan")
    seen = view(b, NS, "plan", T0 + 20)
    assert seen is not None and seen["conflict"]
    assert {s["value"] for s in seen["siblings"]} == {"from b", "from c"}

    # The next decision covers both the earlier decided version and c's write.
    again = conflict_of(NS, "plan", b.get(NS, "plan"), None)
    assert again is not None
    decide(b, "plan", again, 9)
    final = view(b, NS, "plan", T0 + 30)
    assert final is not None and not final["conflict"] and final["decided"] == 9
