"""Clients of a simulated Raft group, and checks of what they saw.

Clients sit beside nodes (as agents beside their swarmnode) and send their
commands to a random live node, following a `NotLeader` hint once. Every
answer is recorded with the virtual time it arrived; the checks run as the
answers arrive, so a violation stops the run at the step that shows it:

- claims: at any instant of virtual time at most one client believes it holds
  a key. A client believes it holds a key from the answer granting or renewing
  it until `send time + lease` (it counts from when it asked, as a real client
  must) or until it asks to release it. Fencing: a grant of a key that starts
  after another client's grant started carries a larger token.
- CAS counters: each register is a counter moved by cas(v, v + 1); two
  successful CASes from the same expected value would be a lost update.
- linearizable reads (ReadIndex): a read that started after k successful
  CASes of a register were acknowledged returns at least k; and its read
  index is at least every commit index any node knew when the read started
  (whatever was committed before the read must be visible to it).
- decisions: every answer about a conflict names the same winner, and a
  winner's own proposal was told it won.
- the whole CAS history: every CAS and every ReadIndex read is recorded in
  the linearizability checker's format (`history`, a `check.Recorder`), and
  `check_linearizable` runs the checker (`swarmnode check`) on it at the end
  of a run: a failed compare counts as the read of the value it found, an
  answer lost to a crash or a timeout as an operation of unknown outcome.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from swarmnode.check.recorder import Pending, Recorder, describe
from swarmnode.consensus import machine as m
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.raft import NotLeader, ProposalDropped
from swarmnode.consensus.ready import ReadState
from swarmnode.consensus.simnet import Callback, SimCluster
from swarmnode.consensus.voters import MemberView, next_change


class HistoryViolation(AssertionError):
    """What clients saw contradicts the state machine's promises."""


@dataclass
class Hold:
    owner: str
    token: int
    start: float
    end: float


class ClaimChecker:
    def __init__(self) -> None:
        self.holds: dict[str, list[Hold]] = defaultdict(list)
        self.grants = 0

    def hold(self, key: str, owner: str, token: int, start: float, end: float) -> None:
        if end <= start:
            return
        self.grants += 1
        for other in self.holds[key]:
            if other.owner == owner:
                continue
            if other.start < end and start < other.end:
                raise HistoryViolation(
                    f"claim {key}: {owner} (token {token}) holds [{start:.1f}, {end:.1f}) ms "
                    f"while {other.owner} (token {other.token}) holds "
                    f"[{other.start:.1f}, {other.end:.1f})"
                )
            if other.start < start and other.token >= token:
                raise HistoryViolation(
                    f"claim {key}: fencing token {token} of {owner} is not above "
                    f"{other.token} of the earlier holder {other.owner}"
                )
        self.holds[key].append(Hold(owner, token, start, end))
        self.holds[key] = [h for h in self.holds[key] if h.end > start - 60_000]

    def release(self, key: str, owner: str, at: float) -> None:
        for h in self.holds[key]:
            if h.owner == owner and h.end > at:
                h.end = max(h.start, at)


class CasChecker:
    def __init__(self) -> None:
        self.successes: dict[str, set[int]] = defaultdict(set)
        self.acked: dict[str, list[float]] = defaultdict(list)

    def success(self, register: str, expected: int, at: float) -> None:
        if expected in self.successes[register]:
            raise HistoryViolation(f"cas {register}: two successes from {expected} (lost update)")
        self.successes[register].add(expected)
        self.acked[register].append(at)

    def read(self, register: str, value: int, started: float) -> None:
        before = sum(1 for t in self.acked[register] if t < started)
        if value < before:
            raise HistoryViolation(
                f"read {register}: got {value} but {before} increments were acknowledged "
                "before the read started (stale read)"
            )


class DecisionChecker:
    def __init__(self) -> None:
        self.winners: dict[str, Any] = {}

    def answer(self, conflict: str, payload: str, result: dict[str, Any]) -> None:
        """`payload` is unique to the proposal that got this answer."""
        winner = self.winners.setdefault(conflict, result["winner"])
        if winner != result["winner"]:
            raise HistoryViolation(
                f"decision {conflict}: answers name {winner!r} and {result['winner']!r}"
            )
        if result["ok"] != (winner == payload):
            raise HistoryViolation(f"decision {conflict}: {payload} told ok={result['ok']}")


@dataclass
class WorkloadConfig:
    clients: int = 4
    keys: int = 3
    registers: int = 2
    conflicts: int = 20
    lease_ms: int = 600
    think_ms: tuple[float, float] = (5.0, 60.0)
    request_timeout_ms: float = 1000.0
    read_every_ms: float = 10.0
    """A ReadIndex read at a random node this often, besides the clients' own: frequent
    reads are what catch a deposed leader that still answers."""
    autopilot: bool = False
    autopilot_every_ms: float = 200.0


@dataclass
class _Client:
    name: str
    holding: dict[str, tuple[int, float]] = field(default_factory=dict)
    """key -> (token, end of the lease as this client counts it)."""
    busy: bool = False


class Workload:
    """Random clients doing claims, CAS increments, ReadIndex reads and decisions."""

    def __init__(self, cluster: SimCluster, rng: random.Random, config: WorkloadConfig) -> None:
        self.cluster = cluster
        self.rng = rng
        self.cfg = config
        self.claims = ClaimChecker()
        self.cas = CasChecker()
        self.decisions = DecisionChecker()
        self.history = Recorder("raft-cas")
        self.clients = [_Client(f"c{i}") for i in range(config.clients)]
        self.counts: dict[str, int] = defaultdict(int)
        self.stopped = False
        self._reads: dict[bytes, tuple[str, str, float, int, Pending]] = {}
        self._read_seq = 0
        self._waiting_reads: list[tuple[str, int, str, float, Pending]] = []
        self._dead_since: dict[str, float] = {}
        self._processes = 0
        cluster.listeners.append(self._on_event)

    def start(self) -> None:
        for client in self.clients:
            self._later(client)
        self.cluster.schedule(self.cfg.read_every_ms, self._reader)
        if self.cfg.autopilot:
            self.cluster.schedule(self.cfg.autopilot_every_ms, self._autopilot)

    def stop(self) -> None:
        """Clients stop; the membership policy (autopilot) keeps running."""
        self.stopped = True

    def check_linearizable(self) -> None:
        """Run the linearizability checker on the CAS history recorded so far."""
        result = self.history.check()
        self.counts["checked_ops"] = result.stats.operations
        if result.linearizable is not True:
            raise HistoryViolation(f"CAS history is {describe(result)}")

    def _now_s(self) -> float:
        return self.cluster.now_ms / 1000.0

    def _process(self) -> int:
        """A process number per operation: an operation of unknown outcome may still be in
        flight when its client moves on."""
        self._processes += 1
        return self._processes

    # ---- client actions ------------------------------------------------------------------

    def _later(self, client: _Client) -> None:
        self.cluster.schedule(self.rng.uniform(*self.cfg.think_ms), self._act, client)

    def _act(self, client: _Client) -> None:
        if self.stopped:
            return
        now = self.cluster.now_ms
        for key, (_token, end) in list(client.holding.items()):
            if end <= now:
                del client.holding[key]
        if client.busy:
            self._later(client)
            return
        choice = self.rng.random()
        if choice < 0.45:
            self._claim_action(client, now)
        elif choice < 0.7:
            self._cas_action(client)
        elif choice < 0.85:
            self._read_action()
        else:
            conflict = f"x{self.rng.randrange(self.cfg.conflicts)}"
            self.counts["decide"] += 1
            payload = f"{client.name}#{self.counts['decide']}"
            self._submit(
                client,
                m.decide(conflict, payload, int(now)),
                lambda r: r is not None and self.decisions.answer(conflict, payload, r),
            )
        self._later(client)

    def _claim_action(self, client: _Client, now: float) -> None:
        key = f"k{self.rng.randrange(self.cfg.keys)}"
        lease = self.cfg.lease_ms
        if key in client.holding:
            token, _ = client.holding[key]
            if self.rng.random() < 0.3:
                self.claims.release(key, client.name, now)
                del client.holding[key]
                self._submit(client, m.release("t", key, client.name, token), lambda r: None)
                self.counts["release"] += 1
                return
            sent = now

            def renewed(result: dict[str, Any] | None) -> None:
                if result and result["ok"] and key in client.holding:
                    end = sent + lease
                    self.claims.hold(key, client.name, token, self.cluster.now_ms, end)
                    client.holding[key] = (token, max(client.holding[key][1], end))
                    self.counts["renewed"] += 1

            self._submit(client, m.renew("t", key, client.name, token, lease), renewed)
            return
        sent = now

        def granted(result: dict[str, Any] | None) -> None:
            if result and result["ok"]:
                end = sent + lease
                self.claims.hold(key, client.name, result["token"], self.cluster.now_ms, end)
                if self.cluster.now_ms < end:
                    client.holding[key] = (result["token"], end)
                self.counts["granted"] += 1
            elif result:
                self.counts["claim_refused"] += 1

        self._submit(client, m.claim("t", key, client.name, lease), granted)

    def _cas_action(self, client: _Client) -> None:
        register = f"r{self.rng.randrange(self.cfg.registers)}"
        node = self._random_live_node()
        if node is None:
            return
        machine = self.cluster.nodes[node].machine
        assert machine is not None
        current = machine.read("reg", register)
        expected = m.ABSENT if current is m.ABSENT else current
        value = 0 if current is m.ABSENT else current
        op = self.history.invoke(
            self._process(), "cas", register, [_json(expected), value + 1], self._now_s()
        )

        def done(result: dict[str, Any] | None) -> None:
            if result is None:
                self.history.info(op, self._now_s())
            elif result["ok"]:
                self.history.ok(op, self._now_s())
                self.cas.success(register, value, self.cluster.now_ms)
                self.counts["cas_ok"] += 1
            else:
                self.history.compare_failed(op, self._now_s(), result.get("value"))
                self.counts["cas_failed"] += 1

        if not self._submit(client, m.cas("reg", register, expected, value + 1), done):
            self.history.fail(op, self._now_s())

    def _reader(self) -> None:
        if self.stopped:
            return
        self._read_action()
        self.cluster.schedule(self.cfg.read_every_ms, self._reader)

    def _read_action(self) -> None:
        register = f"r{self.rng.randrange(self.cfg.registers)}"
        node = self._random_live_node()
        if node is None:
            return
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "big")
        known = max(
            (n.raft.log.committed for n in self.cluster.nodes.values() if n.raft is not None),
            default=0,
        )
        op = self.history.invoke(self._process(), "read", register, None, self._now_s())
        self._reads[context] = (node, register, self.cluster.now_ms, known, op)
        try:
            self.cluster.read_index(node, context)
        except (NotLeader, ProposalDropped):
            del self._reads[context]
            self.history.fail(op, self._now_s())

    def _submit(self, client: _Client, data: bytes, callback: Callback) -> bool:
        """Propose `data` through a live node; `callback` gets the result, or None when the
        outcome is unknown (lost, or not answered within the request timeout). False when
        nothing was proposed (no node, or no leader to take it)."""
        node = self._random_live_node()
        if node is None:
            return False
        client.busy = True
        answered = [False]

        def finish(result: dict[str, Any] | None) -> None:
            if answered[0]:
                return
            answered[0] = True
            client.busy = False
            callback(result)

        def give_up() -> None:
            if not answered[0]:
                self.counts["timeouts"] += 1
                finish(None)

        for _ in range(2):
            try:
                self.cluster.propose(node, data, finish)
                self.cluster.schedule(self.cfg.request_timeout_ms, give_up)
                self.counts["proposed"] += 1
                return True
            except NotLeader as exc:
                if exc.leader is None or not self.cluster.nodes[exc.leader].alive:
                    break
                node = exc.leader
            except ProposalDropped:
                break
        client.busy = False
        self.counts["unavailable"] += 1
        return False

    def _random_live_node(self) -> str | None:
        live = sorted(n for n, node in self.cluster.nodes.items() if node.alive)
        return self.rng.choice(live) if live else None

    # ---- answers that come as events -----------------------------------------------------

    def _on_event(self, node: str, event: str, detail: Any) -> None:
        if event == "read":
            read: ReadState = detail
            found = self._reads.pop(read.context, None)
            if found is not None and found[0] == node:
                if read.index < found[3]:
                    raise HistoryViolation(
                        f"read index {read.index} on {node} is below commit index {found[3]} "
                        "known when the read started (stale read)"
                    )
                self._waiting_reads.append((node, read.index, found[1], found[2], found[4]))
                self._serve_reads(node)
        elif event == "apply":
            self._serve_reads(node)

    def _serve_reads(self, node: str) -> None:
        machine = self.cluster.nodes[node].machine
        if machine is None:
            return
        still = []
        for entry in self._waiting_reads:
            reader, index, register, started, op = entry
            if reader != node or machine.applied < index:
                still.append(entry)
                continue
            value = machine.read("reg", register)
            self.history.ok(op, self._now_s(), _json(value))
            self.cas.read(register, 0 if value is m.ABSENT else value, started)
            self.counts["reads"] += 1
        self._waiting_reads = still

    # ---- membership policy ---------------------------------------------------------------

    def _autopilot(self) -> None:
        now = self.cluster.now_ms
        view: dict[str, MemberView] = {}
        for node_id, node in self.cluster.nodes.items():
            if node.alive:
                self._dead_since.pop(node_id, None)
                view[node_id] = MemberView(True)
            else:
                since = self._dead_since.setdefault(node_id, now)
                view[node_id] = MemberView(False, (now - since) / 1000.0)
        raft = self.cluster.leader_raft()
        if raft is not None:
            leader = raft.id
            last = raft.log.last_index()
            caught_up = {n for n, pr in raft.prs.items() if last - pr.match <= 5}
            pending = self.cluster.change_pending()
            change = next_change(raft.conf, view, pending, raft.cfg, leader, caught_up)
            if change is not None:
                try:
                    self.cluster.step_node(leader, lambda r: r.propose_conf_change(change))
                    self.counts["conf_changes"] += 1
                except (NotLeader, ProposalDropped):
                    pass
        self.cluster.schedule(self.cfg.autopilot_every_ms, self._autopilot)


def _json(value: Any) -> Any:
    """A register value as the history records it (None: absent)."""
    return None if value is m.ABSENT else value


def chaos_config(base: RaftConfig | None = None) -> RaftConfig:
    """The local profile with small snapshots, so runs exercise compaction and transfer."""
    from dataclasses import replace

    base = base or RaftConfig.local()
    return replace(
        base,
        snapshot_threshold=60,
        snapshot_trailing_entries=10,
        snapshot_chunk_bytes=512,
        max_append_entries=16,
        max_inflight_appends=4,
        lease_expiry_margin=0.0,
        voter_dead_time=1.0,
    )
