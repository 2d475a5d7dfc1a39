"""The consensus group with real processes: cas and claims stay linearizable and exclusive
while a node is killed and restarted; conflicts of a consensus namespace are decided once.

Clients on every node run compare-and-swap loops and linearizable reads on a few keys,
and race for task claims, while node 1 is SIGKILLed and started again on its data. The
recorded history goes through the linearizability checker (`swarmnode check`), and the
claims through the rule a task queue needs: never two holders at once.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

from nodeproc import run_cli

from swarmnode.check import check_file
from swarmnode.errors import NotFound, SwarmError, Unavailable

from .procs import Cluster, wait_for

NS = "decisions"
KEYS = ["x", "y"]
CLIENTS_PER_NODE = 3
RUN_SECONDS = 6.0
LEASE = 1.5


def group_formed(cluster: Cluster, voters: int) -> None:
    def formed() -> bool:
        views = [cluster.stats(i).get("consensus") or {} for i in cluster.indexes()]
        leaders = [v for v in views if v.get("role") == "leader"]
        return len(leaders) == 1 and len(leaders[0].get("voters", [])) == voters

    wait_for(formed, f"a consensus group with {voters} voters")


class Recorder:
    """Invoke/ok/fail/info events in the JSONL history format the checker reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = itertools.count()
        self.events: list[dict[str, Any]] = []
        self.start = time.monotonic()

    def event(self, process: str, kind: str, f: str, key: str, value: Any) -> None:
        with self._lock:
            self.events.append(
                {
                    "index": next(self._index),
                    "time": time.monotonic() - self.start,
                    "process": process,
                    "type": kind,
                    "f": f,
                    "key": key,
                    "value": value,
                }
            )

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(e) + "\n" for e in self.events))
        return path


def cas_client(
    cluster: Cluster,
    node: int,
    name: str,
    rec: Recorder,
    stop: threading.Event,
    values: itertools.count,
) -> None:
    client = cluster.nodes[node].client(timeout=10.0)
    with client:
        for n in itertools.count():
            if stop.is_set():
                return
            key = KEYS[n % len(KEYS)]
            rec.event(name, "invoke", "read", key, None)
            try:
                got = client.call("get", ns=NS, key=key, linearizable=True)["value"]
            except NotFound:
                got = None
            except SwarmError:
                rec.event(name, "info", "read", key, None)
                continue
            rec.event(name, "ok", "read", key, got)
            new = next(values)
            rec.event(name, "invoke", "cas", key, [got, new])
            try:
                args = {"value": new} if got is None else {"value": new, "expected": got}
                swapped = client.call("cas", ns=NS, key=key, **args)["ok"]
            except (Unavailable, SwarmError):
                rec.event(name, "info", "cas", key, [got, new])
                continue
            rec.event(name, "ok" if swapped else "fail", "cas", key, [got, new])


def claim_client(
    cluster: Cluster,
    node: int,
    name: str,
    grants: list[tuple],
    lock: threading.Lock,
    stop: threading.Event,
) -> None:
    client = cluster.nodes[node].client(timeout=10.0)
    with client:
        while not stop.is_set():
            asked = time.monotonic()
            try:
                r = client.call("claim", ns="tasks", key="job", owner=name, lease=LEASE)
            except SwarmError:
                continue
            if r["granted"]:
                with lock:
                    grants.append((asked, time.monotonic(), name, r["token"]))
                # Work on the task, then let the lease lapse: someone else's turn.
                stop.wait(2 * LEASE)


def test_cas_and_claims_stay_linearizable_and_exclusive_through_a_kill_and_restart(
    make_cluster, tmp_path: Path
) -> None:
    cluster = make_cluster(3)
    group_formed(cluster, voters=3)
    rec = Recorder()
    stop = threading.Event()
    values = itertools.count(1)
    grants: list[tuple] = []
    grants_lock = threading.Lock()
    threads = [
        threading.Thread(target=cas_client, args=(cluster, i, f"n{i}c{j}", rec, stop, values))
        for i in (0, 2)
        for j in range(CLIENTS_PER_NODE)
    ] + [
        threading.Thread(
            target=claim_client, args=(cluster, i, f"agent{i}", grants, grants_lock, stop)
        )
        for i in (0, 2)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(RUN_SECONDS / 3)
        cluster.kill(1)
        time.sleep(RUN_SECONDS / 3)
        cluster.restart(1)
        time.sleep(RUN_SECONDS / 3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    history = rec.write(tmp_path / "cas.jsonl")
    result = check_file(history)
    oks = [e for e in rec.events if e["type"] == "ok" and e["f"] == "cas"]
    assert len(oks) >= 10, "the clients swapped something"
    assert result.linearizable is True, f"not linearizable: {result.counterexample}"
    # Claims: one holder per token, tokens that grow with every new holder, and a new
    # holder only once the previous one's lease, counted from before it asked (so from
    # before the grant), has run out: the holders' windows never overlap.
    assert len({owner for _, _, owner, _ in grants}) >= 2, "the task changed hands"
    grants.sort(key=lambda g: (g[3], g[1]))
    holders: dict[int, set[str]] = {}
    for _, _, owner, token in grants:
        holders.setdefault(token, set()).add(owner)
    assert all(len(owners) == 1 for owners in holders.values()), "one holder per token"
    firsts = {}
    for asked, returned, owner, token in grants:
        firsts.setdefault(token, (asked, returned, owner))
    ordered = sorted(firsts.items())
    for (_, (asked, _, owner)), (_, (_, returned, later_owner)) in itertools.pairwise(ordered):
        if later_owner != owner:
            assert returned >= asked + LEASE, f"{later_owner} got the task while {owner} held it"


def test_concurrent_writes_in_a_consensus_namespace_are_decided_once_everywhere(
    make_cluster,
) -> None:
    cluster = make_cluster(3)
    group_formed(cluster, voters=3)
    gate = threading.Barrier(3)

    def write(i: int) -> None:
        client = cluster.client(i)
        gate.wait()
        client.put(NS, "plan", f"plan from node {i}")

    threads = [threading.Thread(target=write, args=(i,)) for i in cluster.indexes()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def decided() -> list[dict] | None:
        views = [cluster.client(i).get(NS, "plan") for i in cluster.indexes()]
        if any(v["conflict"] or "decided" not in v for v in views):
            return None
        return views if len({json.dumps(v, sort_keys=True) for v in views}) == 1 else None

    [view, *_] = wait_for(decided, "one decision on every node")
    written = {f"plan from node {i}" for i in cluster.indexes()}
    assert view["value"] in written
    rejected = {r["value"] for r in view["rejected"]}
    # Every write either won or is listed as rejected (writes that met before the
    # decision merged into one sibling set; none is lost from sight).
    assert rejected | {view["value"]} <= written
    assert all(r["writer"] for r in view["rejected"])


def test_status_shows_the_group_its_voters_and_each_followers_lag(make_cluster) -> None:
    cluster = make_cluster(3)
    group_formed(cluster, voters=3)
    ids = sorted(n.node_id for n in cluster.nodes)
    [lead] = [i for i in cluster.indexes() if cluster.stats(i)["consensus"]["role"] == "leader"]
    follower = (lead + 1) % 3
    leader_id = cluster.nodes[lead].node_id

    def status(i: int) -> list[str]:
        done = run_cli("status", socket_path=cluster.nodes[i].socket)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        at = next(n for n, line in enumerate(lines) if line.startswith("consensus   "))
        return lines[at : at + 3]

    head, voters, lag = status(lead)
    assert head.startswith("consensus   leader, term ")
    assert f"leader {leader_id} (this node)" in head
    assert voters.strip() == "voters " + ", ".join(ids)
    followers = sorted(set(ids) - {leader_id})
    assert lag.strip().startswith("lag ") and lag.endswith(" entries")
    behind = [part.split() for part in lag.strip()[4 : -len(" entries")].split(", ")]
    assert [node for node, _ in behind] == followers
    assert all(int(entries) >= 0 for _, entries in behind)
    head, _, after = status(follower)
    assert head.startswith("consensus   follower, ") and f"leader {leader_id}," in head
    assert not after.strip().startswith("lag"), "only the leader knows its followers' lag"
