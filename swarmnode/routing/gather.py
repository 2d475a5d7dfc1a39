"""Merging the answers of a scatter into the one answer an unsharded namespace would give.

Every function takes the request's arguments and the answers of the nodes
that covered the partitions (each answered for its partitions only, so no
entry appears twice), and returns the reply the client sees. What only a
sharded namespace can say is added: `partial: true` with the partitions no
owner could answer for (`missing_partitions`) and their share of the
namespace (`missing_share`).
"""

from __future__ import annotations

from typing import Any


def with_missing(reply: dict[str, Any], missing: list[int], partitions: int) -> dict[str, Any]:
    if missing:
        reply["partial"] = True
        reply["missing_partitions"] = sorted(missing)
        reply["missing_share"] = round(len(missing) / partitions, 6)
    return reply


def merge_list(args: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Key order across partitions: each node gave its first `limit` keys after the cursor,
    so the first `limit` of their union are the namespace's first `limit`."""
    limit = args["limit"]
    items = sorted((i for a in answers for i in a["items"]), key=lambda i: i["key"])
    more = any(a.get("cursor") is not None for a in answers) or len(items) > limit
    items = items[:limit]
    cursor = items[-1]["key"] if more and items else None
    if more and not items:
        # Every node skipped only hidden entries up to its cursor: resume after the lowest.
        cursor = min(a["cursor"] for a in answers if a.get("cursor") is not None)
    return {"items": items, "cursor": cursor}


def merge_search(args: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    limit = args["limit"]
    items = [i for a in answers for i in a["items"]]
    truncated = any(a.get("truncated") for a in answers) or len(items) > limit
    return {
        "items": items[:limit],
        "scanned": sum(a.get("scanned", 0) for a in answers),
        "truncated": truncated,
        "mode": answers[0]["mode"] if answers else args.get("mode"),
    }


def merge_vsearch(args: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The k best of every shard's k best: each shard scored with the same metric, so the
    scores compare across shards exactly as within one."""
    k = args["k"]
    first = answers[0]
    higher = first.get("better") == "higher"
    best: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for item in answer["items"]:
            seen = best.get(item["key"])
            if seen is None or (item["score"] > seen["score"]) == higher:
                best[item["key"]] = item
    ranked = sorted(
        best.values(), key=lambda i: ((-i["score"]) if higher else i["score"], i["key"])
    )
    reply = {key: first[key] for key in ("ns", "metric", "better", "embedder") if key in first}
    reply["exact"] = all(a.get("exact", False) for a in answers)
    reply["items"] = ranked[:k]
    return reply


def merge_vsearch_many(args: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Query by query, what `merge_vsearch` makes of the answers to that query alone."""
    head = {key: answers[0][key] for key in ("ns", "metric", "better", "embedder")}
    results = []
    for i in range(len(args["vectors"])):
        one = [{**head, **a["results"][i], "exact": a.get("exact", False)} for a in answers]
        merged = merge_vsearch(args, one)
        results.append({"items": merged["items"]})
    exact = all(a.get("exact", False) for a in answers)
    return {**head, "exact": exact, "results": results}


def merge_ns_stats(
    definition: dict[str, Any], answers: list[dict[str, Any]], local: dict[str, int]
) -> dict[str, Any]:
    """Cluster-wide counts (each partition counted once, from one of its owners), and what
    this node holds itself."""
    counts = {"entries": 0, "stored": 0, "tombstones": 0, "bytes": 0}
    for answer in answers:
        for name in counts:
            counts[name] += int(answer.get(name, 0))
    return {
        **definition,
        **counts,
        "local_entries": local["entries"],
        "local_bytes": local["bytes"],
    }
