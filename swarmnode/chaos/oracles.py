"""What must hold once the faults are healed, judged from the history and the nodes' answers.

The same questions as the simulator's oracles (`swarmnode/sim/oracles.py`),
asked of real processes through their client sockets instead of their
in-memory stores:

- replicas identical: every node lists the same entries (key, kind, HLC
  timestamp, expiry, value) in every namespace of the run;
- membership settled: every node sees every node alive;
- registers: no acknowledged write is lost. For keys only written (`r*`),
  the final register is the acknowledged write with the highest timestamp,
  or a later write whose outcome was unknown; never an older one, never a
  value nobody wrote. Keys that are also deleted (`d*`) may end absent only
  if a delete was issued. No read ever returned the value of a write that
  certainly failed;
- counters: the value is every acknowledged increment plus some subset of
  the unknown ones;
- sets (add-wins): a member whose acknowledged add no remove could have
  observed (no remove ended after the add began) is present; a member each
  of whose adds was acknowledged and later removed on the same node (where
  the remove must have observed it) is absent;
- TTLs: a key whose writes all expired is gone on every node;
- the consensus group's registers: the `cas` and linearizable `read`
  operations are linearizable (`swarmnode check`'s search, on the history
  itself);
- claims: two grants of a key never overlap in time (a later grant completes
  only after the earlier holder's lease, counted from when it asked, has run
  out), and a grant that began after another ended carries a larger fencing
  token;
- vectors: every acknowledged vector is listed and found by a vector search
  on every node;
- no operation failed with `internal` (a bug in the node).

Unknown outcomes (`info`) are never counted against the system: each check
allows them to have happened or not.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from swarmnode.chaos.history import FAIL, INFO, OK, History, Op, events_of
from swarmnode.chaos.workload import NS, VEC_NS
from swarmnode.check import CasRegister, check_history
from swarmnode.check.jsonl import read_jsonl
from swarmnode.crdt.hlc import wall_ms

Listing = dict[str, dict[str, Any]]


def _done(op: Op) -> bool:
    return op.type in (OK, INFO)


def written_value(op: Op) -> Any:
    return op.value if op.f == "put" else None


def check_registers(history: History, final: Listing) -> list[str]:
    out: list[str] = []
    writes: dict[str, list[Op]] = defaultdict(list)
    deletes: dict[str, list[Op]] = defaultdict(list)
    for op in history.of("put"):
        writes[op.key].append(op)
    for op in history.of("delete"):
        deletes[op.key].append(op)
    failed_values = {written_value(op) for ops in writes.values() for op in ops if op.type == FAIL}
    done_values = {written_value(op) for ops in writes.values() for op in ops if _done(op)}
    for op in history.of("get"):
        if op.type == OK and op.result is not None:
            if op.result in failed_values and op.result not in done_values:
                out.append(f"read of {op.key} returned {op.result!r}, the value of a failed write")
            elif op.result not in done_values:
                out.append(f"read of {op.key} returned {op.result!r}, which no write wrote")
    for key in sorted(set(writes) | set(deletes)):
        out.extend(_check_register(key, writes[key], deletes[key], final.get(key)))
    return out


def _check_register(key: str, writes: list[Op], deletes: list[Op], item: Any) -> list[str]:
    acked = [op for op in writes if op.type == OK and op.detail.get("ts") is not None]
    unknown = {written_value(op) for op in writes if op.type == INFO}
    top = max(acked, key=lambda op: op.detail["ts"]) if acked else None
    if item is None:
        if top is not None and not any(_done(d) for d in deletes):
            return [
                f"register {key}: absent, but write of {written_value(top)!r} "
                f"(ts {top.detail['ts']}) was acknowledged and nothing deleted it"
            ]
        return []
    ts, value = item.get("ts"), item.get("value")
    if top is None:
        if value not in unknown:
            return [f"register {key}: holds {value!r}, which no write could have written"]
        return []
    top_ts = top.detail["ts"]
    if ts < top_ts:
        return [
            f"register {key}: holds {value!r} at ts {ts}, older than the acknowledged "
            f"write of {written_value(top)!r} at ts {top_ts} (lost)"
        ]
    if ts == top_ts:
        same = {written_value(op) for op in acked if op.detail["ts"] == ts}
        if value not in same:
            return [
                f"register {key}: holds {value!r} at ts {ts}; the write at that ts wrote {same}"
            ]
        return []
    if value not in unknown:
        return [
            f"register {key}: holds {value!r} at ts {ts}, newer than every acknowledged write, "
            "but no write of unknown outcome wrote it"
        ]
    return []


def subset_sums(values: Iterable[int]) -> set[int]:
    sums = {0}
    for v in values:
        sums |= {s + v for s in sums}
    return sums


def check_counters(history: History, final: Listing) -> list[str]:
    out = []
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history.of("incr"):
        by_key[op.key].append(op)
    for key, ops in sorted(by_key.items()):
        acked = sum(op.value for op in ops if op.type == OK)
        unknown = [op.value for op in ops if op.type == INFO]
        item = final.get(key)
        value = item.get("value") if item else 0
        extra = value - acked
        if len(unknown) <= 20:
            possible = extra in subset_sums(unknown)
        else:
            possible = 0 <= extra <= sum(unknown)
        if not possible:
            out.append(
                f"counter {key}: {value}, acknowledged increments sum to {acked} and "
                f"{len(unknown)} unknown ones ({sum(unknown)} in all) cannot make up {extra}"
            )
    return out


def check_sets(history: History, final: Listing) -> list[str]:
    out = []
    ops_of: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in history.of("sadd", "srem"):
        ops_of[(op.key, op.value)].append(op)
    for (key, member), ops in sorted(ops_of.items()):
        item = final.get(key)
        members = set(item.get("value") or []) if item else set()
        adds = [op for op in ops if op.f == "sadd" and _done(op)]
        rems = [op for op in ops if op.f == "srem" and _done(op)]

        def observed_by_no_remove(add: Op, rems: list[Op] = rems) -> bool:
            return all(
                r.type == OK and r.completed is not None and r.completed <= add.invoked
                for r in rems
            )

        def removed_on_its_node(add: Op, rems: list[Op] = rems) -> bool:
            return add.type == OK and any(
                r.type == OK and r.node == add.node and r.invoked > (add.completed or math.inf)
                for r in rems
            )

        must = [a for a in adds if a.type == OK and observed_by_no_remove(a)]
        if must and member not in members:
            out.append(
                f"set {key}: {member} is missing, but its add at t={must[0].invoked:.2f} "
                "was acknowledged and no remove could have seen it"
            )
        gone = not adds or all(removed_on_its_node(a) for a in adds)
        if gone and member in members:
            out.append(f"set {key}: {member} is present, but every add of it was removed")
    return out


def check_ttl(history: History, final: Listing, checked_at: float, slack: float = 1.0) -> list[str]:
    """Keys whose writes have all expired are gone.

    A key still listed must show a value one of its TTL writes wrote. If that write was
    acknowledged, it must not have expired yet: its TTL after its acknowledgement, plus
    `slack`, which covers how far a node's wall clock may have been off when it stamped
    the write (expiry follows the write's HLC timestamp, so a write stamped by a clock
    running ahead expires that much later). A write of unknown outcome (`info`) may have
    taken effect any time after it was sent: a node stopped with the request in its
    socket applies it when it resumes, with that moment's timestamp. So for such a value
    the history cannot say when it expires; the node's own answer must then be
    consistent: listed with the expiry its TTL gives after its timestamp.
    """
    out = []
    writes: dict[str, list[Op]] = defaultdict(list)
    for op in history.of("put_ttl"):
        if op.type != FAIL:
            writes[op.key].append(op)
    for key, ops in sorted(writes.items()):
        item = final.get(key)
        if item is None:
            continue
        writer = next((op for op in ops if op.value[0] == item.get("value")), None)
        if writer is None:
            out.append(f"ttl key {key}: listed with {item.get('value')!r}, no TTL write of it")
        elif writer.type == OK:
            expires = (writer.completed or writer.invoked) + writer.value[1]
            if checked_at > expires + slack:
                out.append(
                    f"ttl key {key}: still listed {checked_at - expires:.1f}s after it expired"
                )
        else:
            ttl_ms = round(writer.value[1] * 1000)
            stamped = wall_ms(item["ts"]) if isinstance(item.get("ts"), int) else None
            if stamped is None or item.get("expires_at") is None:
                out.append(f"ttl key {key}: listed without a timestamp or an expiry: {item}")
            elif abs(item["expires_at"] - (stamped + ttl_ms)) > 2:
                out.append(
                    f"ttl key {key}: expires at {item['expires_at']}, its write stamped "
                    f"{stamped} with a TTL of {ttl_ms} ms"
                )
    return out


def check_vectors(history: History, listings: dict[int, Listing]) -> list[str]:
    out = []
    acked = [op for op in history.of("vput") if op.type == OK]
    for node, listing in sorted(listings.items()):
        missing = [op.key for op in acked if op.key not in listing]
        if missing:
            out.append(
                f"node {node}: {len(missing)} acknowledged vectors missing, e.g. {missing[:5]}"
            )
    return out


def check_internal_errors(history: History) -> list[str]:
    bad = [op for op in history.ops if op.error and op.error.startswith("internal")]
    return [f"{op.f} {op.key} on node {op.node} failed: {op.error}" for op in bad[:20]]


def compare_replicas(listings: dict[int, dict[str, Listing]]) -> list[str]:
    """Every node's listing of every namespace equals the first node's."""
    out = []
    nodes = sorted(listings)
    if not nodes:
        return out
    ref = nodes[0]
    for ns in sorted({ns for per in listings.values() for ns in per}):
        base = listings[ref].get(ns, {})
        for n in nodes[1:]:
            mine = listings[n].get(ns, {})
            if mine == base:
                continue
            keys = sorted(set(mine) | set(base))
            diff = [k for k in keys if mine.get(k) != base.get(k)]
            k = diff[0]
            out.append(
                f"{ns}: node {n} and node {ref} differ on {len(diff)} keys, e.g. {k}: "
                f"{mine.get(k)!r} vs {base.get(k)!r}"
            )
    return out


def check_all(
    history: History,
    listings: dict[int, dict[str, Listing]],
    checked_at: float,
    ttl_slack: float = 1.0,
) -> dict[str, list[str]]:
    """Every history oracle over the final state (the first node's, once replicas agree)."""
    first = listings[min(listings)]
    final = first.get(NS, {})
    return {
        "replicas": compare_replicas(listings),
        "registers": check_registers(history, final),
        "counters": check_counters(history, final),
        "sets": check_sets(history, final),
        "ttl": check_ttl(history, final, checked_at, ttl_slack),
        "vectors": check_vectors(history, {n: per.get(VEC_NS, {}) for n, per in listings.items()}),
        "internal_errors": check_internal_errors(history),
        "linearizable": check_linearizable(history),
        "claims": check_claims(history),
    }


def check_linearizable(history: History, timeout: float = 60.0) -> list[str]:
    """The group's registers (f `cas` and `read`) through the linearizability checker."""
    ops = [op for op in history.ops if op.f in ("cas", "read")]
    if not ops:
        return []
    model = CasRegister()
    checked = read_jsonl(events_of(ops), "chaos history", model.functions)
    result = check_history(checked.ops, model, timeout=timeout, explain=True)
    if result.verdict == "linearizable":
        return []
    if result.verdict == "unknown":
        return [f"cas history: the checker gave up after {timeout:g}s ({result.stats})"]
    return [f"cas history is not linearizable: {result.counterexample}"]


def check_claims(history: History) -> list[str]:
    """No two holders of a key at once, and fencing tokens that grow with every grant."""
    out: list[str] = []
    grants: dict[str, list[Op]] = defaultdict(list)
    for op in history.of("claim"):
        if op.type == OK and op.result and op.result[0]:
            grants[op.key].append(op)
    for key, ops in grants.items():
        ops.sort(key=lambda op: op.invoked)
        for i, a in enumerate(ops):
            for b in ops[i + 1 :]:
                if b.result[1] == a.result[1]:
                    continue
                held_a = (a.completed, a.invoked + a.value[1])
                held_b = (b.completed, b.invoked + b.value[1])
                if max(held_a[0], held_b[0]) < min(held_a[1], held_b[1]):
                    out.append(
                        f"claim {key}: {a.value[0]} (token {a.result[1]}) held it over "
                        f"{held_a[0]:.3f}-{held_a[1]:.3f} and {b.value[0]} (token "
                        f"{b.result[1]}) over {held_b[0]:.3f}-{held_b[1]:.3f}"
                    )
                if b.invoked > a.completed and b.result[1] <= a.result[1]:
                    out.append(
                        f"claim {key}: token {b.result[1]} granted after token {a.result[1]}"
                    )
    return out
