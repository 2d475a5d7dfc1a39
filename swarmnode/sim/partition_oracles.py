"""What must hold of sharded namespaces once a cluster is quiet, judged per partition.

A sharded namespace is not held whole by any node, so the whole-namespace
checks (equal Merkle roots everywhere) do not apply to it. Instead, with the
owners computed here from the live members (rendezvous placement is a pure
function of the member list):

- every live node settled on the same view: the live members;
- the owners of each partition hold it identically (the same keys with the
  same digests, and the same decoded entries), and none of them still waits
  for it, unless every other node that owned it with the stopped nodes
  counted is stopped (with R = 1, a stopped node's partitions wait for it:
  nobody else ever held them);
- no other node holds anything of it (handed over, then dropped);
- every acknowledged write is found on the owners of its key's partition
  (checked by `oracles.check_history`, which asks `owners_of` who to read).
"""

from __future__ import annotations

from swarmnode.placement.hashing import partition_leaves, partition_of
from swarmnode.placement.plan import Sharding
from swarmnode.placement.rendezvous import owner_table
from swarmnode.replication.merkle import leaf_bits
from swarmnode.sim.cluster import Cluster, SimNode


def sharded(cluster: Cluster) -> dict[str, Sharding]:
    """The sharded namespaces, as the first live node's store defines them."""
    live = cluster.live()
    if not live:
        return {}
    assert live[0].store is not None
    return {
        name: Sharding(d.partitions, d.replicas)
        for name, d in live[0].store.catalog.definitions.items()
        if d.sharded
    }


def expected_view(cluster: Cluster) -> tuple[str, ...]:
    return tuple(sorted(sn.node_id for sn in cluster.live()))


def owners_of(cluster: Cluster, ns: str, key: str) -> set[str] | None:
    """Node ids that must hold `key` of `ns` (None: the namespace is held whole)."""
    sharding = sharded(cluster).get(ns)
    if sharding is None:
        return None
    view = expected_view(cluster)
    table = owner_table(ns, sharding.partitions, view, sharding.replicas)
    return set(table[partition_of(key, sharding.partitions)])


def _listing(sn: SimNode, ns: str, partition: int, partitions: int, bits: int) -> dict[str, bytes]:
    assert sn.store is not None
    first, last = partition_leaves(partition, partitions, bits)
    return dict(sn.store.leaf_entries(ns, first, last))


def check_partitions(cluster: Cluster) -> list[str]:
    """Views agree, owners hold each partition identically, non-owners hold none of it."""
    live = cluster.live()
    namespaces = sharded(cluster)
    if not live or not namespaces:
        return []
    out: list[str] = []
    view = expected_view(cluster)
    everyone = tuple(sorted(sn.node_id for sn in cluster.nodes))
    down = {sn.node_id for sn in cluster.nodes if not sn.up}
    for sn in live:
        assert sn.node is not None
        seen = sn.node.placement.map.view
        if seen != view:
            out.append(f"n{sn.index} settled on view {seen}, the live members are {view}")
    for sn in live:
        waiting = []
        for ns, p in sorted(sn.node.placement.map.filling):
            sharding = namespaces[ns]
            holders = set(owner_table(ns, sharding.partitions, everyone, sharding.replicas)[p])
            stuck = down | {o.node_id for o in live if (ns, p) in o.node.placement.map.filling}
            if not down or not holders - {sn.node_id} <= stuck:
                waiting.append((ns, p))
        if waiting:
            out.append(f"n{sn.index} still waits for partitions {waiting[:5]}")
    if out:
        return out
    ae = cluster.node_config.antientropy
    bits = leaf_bits(ae.tree_fanout, ae.tree_depth)
    by_id = {sn.node_id: sn for sn in live}
    for ns, sharding in sorted(namespaces.items()):
        table = owner_table(ns, sharding.partitions, view, sharding.replicas)
        for p, owners in enumerate(table):
            listings = {sn.index: _listing(sn, ns, p, sharding.partitions, bits) for sn in live}
            owner_nodes = [by_id[o] for o in owners]
            ref = owner_nodes[0]
            for sn in owner_nodes[1:]:
                if listings[sn.index] != listings[ref.index]:
                    diff = set(listings[sn.index].items()) ^ set(listings[ref.index].items())
                    keys = sorted({k for k, _ in diff})[:5]
                    out.append(
                        f"{ns} partition {p}: owners n{ref.index}, n{sn.index} differ at {keys}"
                    )
                    continue
                for key in listings[ref.index]:
                    a, b = ref.store.get(ns, key), sn.store.get(ns, key)  # type: ignore[union-attr]
                    if a != b:
                        out.append(f"{ns}/{key}: n{sn.index} holds {b!r}, n{ref.index} {a!r}")
                        break
            for sn in live:
                if sn.node_id not in owners and listings[sn.index]:
                    keys = sorted(listings[sn.index])[:5]
                    out.append(
                        f"{ns} partition {p}: n{sn.index} is no owner and still holds "
                        f"{len(listings[sn.index])} keys ({keys})"
                    )
    return out


def partitions_converged(cluster: Cluster) -> bool:
    return not check_partitions(cluster)
