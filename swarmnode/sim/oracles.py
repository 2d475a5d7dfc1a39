"""What must hold at the end of every run, once faults have stopped and the cluster is quiet.

Each check returns a list of violations (plain sentences); an empty list is a
pass. None of them trusts replication to tell what happened: the expected
state is computed from the history alone (see `workload`), then compared with
every live replica.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from swarmnode.crdt.causal import Dot
from swarmnode.membership.state import MemberState
from swarmnode.replication.merkle import MerkleTree
from swarmnode.sim.cluster import Cluster, SimNode
from swarmnode.sim.workload import READS, History, OpRecord

GONE = (MemberState.DEAD, MemberState.LEFT)


def roots(sn: SimNode) -> dict[str, bytes]:
    """Merkle root per namespace holding any entry, as this node's trees have it."""
    assert sn.node is not None
    return {ns: tree.root() for ns, tree in sorted(sn.node.trees.items()) if tree.count()}


def converged(cluster: Cluster) -> bool:
    live = cluster.live()
    if not live:
        return True
    first = roots(live[0])
    return all(roots(sn) == first for sn in live[1:])


def membership_settled(cluster: Cluster) -> bool:
    return not check_membership(cluster)


def check_replicas(cluster: Cluster) -> list[str]:
    """Every live replica holds the same state: roots, key listings and decoded entries."""
    live = cluster.live()
    out: list[str] = []
    if not live:
        return out
    ref = live[0]
    for sn in live:
        assert sn.node is not None and sn.store is not None
        for ns, tree in sn.node.trees.items():
            rebuilt = MerkleTree.build(sn.store.digests(ns), fanout=tree.fanout, depth=tree.depth)
            if rebuilt.root() != tree.root() or rebuilt.count() != tree.count():
                out.append(f"n{sn.index}: Merkle tree of {ns!r} differs from its store's digests")
    ref_roots = roots(ref)
    for sn in live[1:]:
        mine = roots(sn)
        if mine != ref_roots:
            diff = sorted(
                ns for ns in set(mine) | set(ref_roots) if mine.get(ns) != ref_roots.get(ns)
            )
            out.append(f"n{sn.index} and n{ref.index}: Merkle roots differ in {diff}")
    namespaces = sorted({ns for sn in live for ns in roots(sn)})
    for ns in namespaces:
        listings = {sn.index: dict(sn.store.digests(ns)) for sn in live if sn.store is not None}
        keys = sorted(set().union(*listings.values()))
        for key in keys:
            entries = [(sn.index, sn.store.get(ns, key)) for sn in live if sn.store is not None]
            first_index, first = entries[0]
            for index, entry in entries[1:]:
                if entry != first:
                    out.append(f"{ns}/{key}: n{index} holds {entry!r}, n{first_index} {first!r}")
                    break
    return out


def check_history(
    cluster: Cluster, history: History, ns: str, vector_ns: str = "simvec"
) -> list[str]:
    """Acknowledged writes against every live replica, per the semantics of their type."""
    out: list[str] = []
    for op in history.ops:
        if op.status == "error":
            out.append(f"op {op.id} ({op.kind} {op.key} on n{op.node}) failed: {op.error}")
    by_key: dict[tuple[str, str], list[OpRecord]] = defaultdict(list)
    for op in history.acked():
        if op.kind not in READS:
            key_ns = vector_ns if op.kind == "vput" else ns
            by_key[(key_ns, op.key)].append(op)
    early_ms = 2 * cluster.node_config.store.max_clock_offset_ms
    for sn in cluster.live():
        assert sn.store is not None
        now_ms = cluster.wall_ms(sn)
        for (key_ns, key), ops in sorted(by_key.items()):
            entry = sn.store.get(key_ns, key)
            kind = ops[0].kind
            if kind in ("put", "delete", "vput"):
                out.extend(_check_register(sn.index, key, ops, entry, now_ms, early_ms))
            elif kind in ("incr", "cdel"):
                out.extend(_check_counter(sn.index, key, ops, entry))
            else:
                out.extend(_check_set(sn.index, key, ops, entry))
    return out


def _check_register(
    index: int, key: str, ops: list[OpRecord], entry: Any, now_ms: int, early_ms: int
) -> list[str]:
    """The latest (timestamp, node) write wins, and is visible iff neither deleted nor expired.

    Visibility is judged on the replica's own wall clock. An expiry may show up
    to `early_ms` early: a peer whose clock leads by up to the max offset strips
    the entry that much sooner, and the stripped state replicates. A replica
    may hold no register at all only where the winner is dead (its tombstone
    may have been collected).
    """
    writes = [op for op in ops if op.order is not None]
    if not writes:
        return []
    winner = max(writes, key=lambda op: op.order)
    alive = not winner.deleted and (winner.expires_at is None or now_ms < winner.expires_at)
    may_be_expired = winner.expires_at is not None and now_ms >= winner.expires_at - early_ms
    reg = entry.reg if entry is not None else None
    if reg is None:
        if alive and not may_be_expired:
            return [f"n{index} {key}: acknowledged write op {winner.id} is lost (no register)"]
        return []
    visible = reg.visible(now_ms)
    if (reg.ts, reg.node) != winner.order or (visible != alive and not may_be_expired):
        return [
            f"n{index} {key}: holds (ts={reg.ts}, node={reg.node}, deleted={reg.deleted}, "
            f"expires_at={reg.expires_at}), the latest acknowledged write is op {winner.id} "
            f"{winner.order} deleted={winner.deleted} expires_at={winner.expires_at} "
            f"(replica clock {now_ms})"
        ]
    if visible and reg.value != winner.arg:
        return [f"n{index} {key}: value {reg.value!r}, op {winner.id} wrote {winner.arg!r}"]
    return []


def _check_counter(index: int, key: str, ops: list[OpRecord], entry: Any) -> list[str]:
    """Per slot, the acknowledged increments above the highest reset that observed that slot."""
    ups: dict[str, int] = defaultdict(int)
    downs: dict[str, int] = defaultdict(int)
    for op in ops:
        if op.kind == "incr" and op.actor is not None:
            if op.arg >= 0:
                ups[op.actor] += op.arg
            else:
                downs[op.actor] -= op.arg
    floor_up: dict[str, int] = defaultdict(int)
    floor_down: dict[str, int] = defaultdict(int)
    for op in ops:
        for actor, (fp, fn) in op.floors.items():
            floor_up[actor] = max(floor_up[actor], fp)
            floor_down[actor] = max(floor_down[actor], fn)
    out = []
    for actor in sorted(set(floor_up) | set(floor_down)):
        if floor_up[actor] > ups[actor] or floor_down[actor] > downs[actor]:
            out.append(f"n{index} {key}: a reset observed slot {actor} beyond its increments")
    expected = sum(ups[a] - floor_up[a] for a in ups) - sum(downs[a] - floor_down[a] for a in downs)
    value = entry.counter.value() if entry is not None and entry.counter is not None else 0
    if value != expected:
        out.append(
            f"n{index} {key}: counter is {value}, acknowledged increments above the "
            f"observed resets sum to {expected}"
        )
    return out


def _check_set(index: int, key: str, ops: list[OpRecord], entry: Any) -> list[str]:
    added: dict[str, set[Dot]] = defaultdict(set)
    removed: dict[str, set[Dot]] = defaultdict(set)
    for op in ops:
        if op.dot is not None:
            added[op.arg].add(op.dot)
        for member, dots in op.observed.items():
            removed[member].update(dots)
    expected = {m: frozenset(d - removed[m]) for m, d in added.items() if d - removed[m]}
    elems = entry.orset.elems if entry is not None and entry.orset is not None else {}
    actual = {m: frozenset(d) for m, d in elems.items() if d}
    if actual == expected:
        return []
    return [
        f"n{index} {key}: members {sorted(actual)} (dots {sorted(actual.items())}), "
        f"add-wins over the history gives {sorted(expected)} (dots {sorted(expected.items())})"
    ]


def check_membership(cluster: Cluster) -> list[str]:
    """Every live node sees every other live node alive and every stopped node dead or left."""
    out: list[str] = []
    up = {sn.node_id for sn in cluster.live()}
    down = {sn.node_id: sn.index for sn in cluster.nodes if not sn.up}
    index = {sn.node_id: sn.index for sn in cluster.nodes}
    for viewer, view in cluster.views().items():
        for member in up - {viewer}:
            state = view.get(member)
            if state is not MemberState.ALIVE:
                label = state.label if state is not None else "unknown"
                out.append(f"n{index[viewer]} sees live n{index[member]} as {label}")
        for member, i in down.items():
            state = view.get(member)
            if state is not None and state not in GONE:
                out.append(f"n{index[viewer]} still sees stopped n{i} as {state.label}")
    return out


def check_detection(detections: list[dict[str, Any]], bound: float) -> list[str]:
    """Each crash that lasted longer than `bound` was declared dead everywhere within it."""
    out = []
    for d in detections:
        took = d["detected_after"]
        if d["down_for"] >= bound and (took is None or took > bound):
            seen = "never" if took is None else f"after {took:.2f}s"
            out.append(
                f"crash of n{d['node']} at t={d['at']:.2f}: declared dead everywhere {seen}, "
                f"bound {bound:.2f}s"
            )
    return out
