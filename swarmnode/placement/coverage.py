"""A covering set: which nodes to ask so that every partition is asked once.

A scatter-gather (vsearch, list, search, ns_stats) must see each partition
exactly once: twice would count or rank its entries twice, never would leave
them out. Each partition has several owners; the covering set picks one per
partition, preferring the local node (no network), then nodes that already
answer for many partitions (fewer requests), then the least loaded (fewest
requests in flight), then rank order. A partition with no candidate is
returned as missing, so the answer can say what share it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def cover(
    candidates: Mapping[int, Sequence[str]],
    *,
    local: str | None = None,
    load: Mapping[str, int] | None = None,
) -> tuple[dict[str, list[int]], list[int]]:
    """({node: partitions it answers for}, partitions without a candidate).

    `candidates[p]` are the nodes that may answer for partition p, best first.
    Greedy set cover: the local node takes everything it can, then repeatedly the
    node that covers the most partitions still open (ties: least loaded, then the
    one ranked better for the lowest open partition, then node id).
    """
    load = load or {}
    open_: set[int] = set()
    missing: list[int] = []
    for p, nodes in candidates.items():
        if nodes:
            open_.add(p)
        else:
            missing.append(p)
    chosen: dict[str, list[int]] = {}
    if local is not None:
        mine = sorted(p for p in open_ if local in candidates[p])
        if mine:
            chosen[local] = mine
            open_.difference_update(mine)
    while open_:
        counts: dict[str, int] = {}
        best_rank: dict[str, tuple[int, int]] = {}
        for p in sorted(open_):
            for rank, node in enumerate(candidates[p]):
                counts[node] = counts.get(node, 0) + 1
                best_rank.setdefault(node, (p, rank))
        node = min(counts, key=lambda n: (-counts[n], load.get(n, 0), best_rank[n][1], n))
        mine = sorted(p for p in open_ if node in candidates[p])
        chosen[node] = mine
        open_.difference_update(mine)
    return chosen, sorted(missing)


def recover(
    sources: Mapping[int, str | None],
    candidates: Mapping[int, Sequence[str]],
    *,
    local: str | None = None,
    load: Mapping[str, int] | None = None,
) -> tuple[dict[str, list[int]], list[int]]:
    """A watch's covering set after a change: which partitions need a new source, and where.

    `sources[p]` is the node that feeds a watch the changes of partition p now (None: no
    node does); `candidates[p]` the nodes that may, best first. A source that is still a
    candidate keeps its partitions (moving a partition to another owner opens a window of
    changes nobody relays, so it moves only when its source can no longer serve it); the
    others are covered afresh as `cover` would. Returns ({node: partitions it now feeds},
    partitions without a candidate), for the partitions that change only.
    """
    stale = {}
    for p, node in sources.items():
        nodes = candidates.get(p, ())
        if node not in nodes:
            stale[p] = nodes
    return cover(stale, local=local, load=load)
