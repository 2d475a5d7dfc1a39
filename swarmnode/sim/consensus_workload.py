"""Clients of the consensus group in the node-level simulator, and what they must see.

Each client loops: think, then send one operation to a node (mostly its home
node) through the node's service layer (`Service.call`, as a request from the
socket arrives), wait for the answer, and again. The operations are what the
consensus group offers users:

- `get {linearizable: true}` of a register of a consensus namespace, then a
  `cas` of that register from the value read to a fresh one (or alone: a
  read);
- `claim` of a task key with a lease, `renew` while holding it, `release`;
- `put` of a few keys of the consensus namespace from many nodes, so
  concurrent writes escalate to the group as conflicts to decide.

What they see is judged three ways:

- the CAS history (every read and cas, with `unavailable` as an unknown
  outcome and a failed compare as the read of the value it found) is recorded
  in the linearizability checker's format and checked by `swarmnode check`'s
  search at the end of the run (`check`);
- claims: at no instant of virtual time do two clients believe they hold the
  same key, and the fencing token of a grant that starts after another
  client's grant started is larger (`ClaimChecker`). A client believes it
  holds a key from the reply granting or renewing it until `send time +
  lease`, as a careful real client would count, or until it sends a release;
- after the run has settled, no key of the consensus namespace is still in
  conflict on any live node, and each decided value is one that was written
  (`check_decided`).

Any other error than `unavailable` (and `not_found` for a read of a register
never set) is a finding.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from swarmnode.check.recorder import Pending, Recorder, describe
from swarmnode.consensus.simworkload import ClaimChecker, HistoryViolation
from swarmnode.errors import NotFound, Unavailable
from swarmnode.sim.cluster import Cluster, SimNode

ACTIONS = ("cas", "read", "claim", "put")


@dataclass
class ConsensusWorkloadConfig:
    # Concurrent clients; each has a home node it uses most of the time.
    clients: int = 4
    stickiness: float = 0.7
    # Seconds a client thinks between two operations (drawn uniformly).
    think: tuple[float, float] = (0.02, 0.25)
    # The consensus namespace: its registers (cas, linearizable get) and the keys written
    # with put, whose concurrent writes are escalated as conflicts.
    ns: str = "decisions"
    registers: int = 2
    conflict_keys: int = 2
    # Where the task claims live, how many task keys, and the lease (seconds).
    claim_ns: str = "tasks"
    claim_keys: int = 2
    lease: float = 1.0
    # Relative weights of read-then-cas, a read alone, a claim action and a put.
    mix: tuple[float, ...] = (4, 2, 4, 1)
    # Seconds after which a client stops waiting for an answer (outcome unknown); far above
    # the command timeout, so only a reply lost with its node counts.
    give_up: float = 10.0


@dataclass
class _Client:
    index: int
    home: int
    holding: dict[str, tuple[int, float]] = field(default_factory=dict)
    """key -> (token, end of the lease as this client counts it, virtual seconds)."""


class ConsensusWorkload:
    def __init__(
        self, cluster: Cluster, config: ConsensusWorkloadConfig, rng: random.Random
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.rng = rng
        self.history = Recorder("sim-cas")
        self.claims = ClaimChecker()
        self.violations: list[str] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.written: dict[str, set[Any]] = defaultdict(set)
        """Values written with put to each conflict key."""
        n = len(cluster.nodes)
        self.clients = [_Client(i, rng.randrange(n)) for i in range(config.clients)]
        self._end = 0.0
        self._values = 0
        self._processes = 0

    # --- driving ---------------------------------------------------------------------

    def schedule(self, start: float, end: float) -> None:
        """Clients start at `start` and send nothing after `end`."""
        self._end = end
        for client in self.clients:
            self.cluster.loop.call_at(
                start + self.rng.uniform(*self.config.think), self._act, client
            )

    def _next(self, client: _Client) -> None:
        at = self.cluster.now + self.rng.uniform(*self.config.think)
        if at < self._end:
            self.cluster.loop.call_at(at, self._act, client)

    def _act(self, client: _Client) -> None:
        now = self.cluster.now
        for key, (_, end) in list(client.holding.items()):
            if end <= now:
                del client.holding[key]
        action = self.rng.choices(ACTIONS, weights=self.config.mix)[0]
        node = client.home
        if self.rng.random() >= self.config.stickiness:
            node = self.rng.randrange(len(self.cluster.nodes))
        if action in ("cas", "read"):
            self._read(client, node, then_cas=action == "cas")
        elif action == "claim":
            self._claim_action(client, node)
        else:
            self._put(client, node)

    def _fresh(self) -> int:
        self._values += 1
        return self._values

    def _process(self) -> int:
        """A process number per operation: one of unknown outcome may still be in flight."""
        self._processes += 1
        return self._processes

    def _send(self, node: int, op: str, args: dict[str, Any], done: Any) -> bool:
        """Send a request to `node`; `done(reply, error)` once answered (both None when the
        answer is lost). False when the node is down: nothing was sent."""
        sn: SimNode = self.cluster.nodes[node]
        if not sn.up:
            return False
        answered = [False]

        def finish(reply: Any, error: BaseException | None) -> None:
            if not answered[0]:
                answered[0] = True
                done(reply, error)

        def start(_host: Any) -> None:
            assert sn.service is not None
            task = self.cluster.loop.create_task(sn.service.call(op, args, _Request()))

            def settled(t: Any) -> None:
                if t.cancelled():
                    finish(None, None)
                elif t.exception() is not None:
                    finish(None, t.exception())
                else:
                    finish(t.result(), None)

            task.add_done_callback(settled)

        self.cluster.call(node, start)
        self.cluster.loop.call_later(self.config.give_up, finish, None, None)
        return True

    def _finding(self, what: str, error: BaseException) -> None:
        code = getattr(error, "code", type(error).__name__)
        self.violations.append(f"{what}: unexpected {code}: {error}")

    # --- registers: linearizable reads and cas ----------------------------------------

    def _read(self, client: _Client, node: int, then_cas: bool) -> None:
        key = f"r{self.rng.randrange(self.config.registers)}"
        op = self.history.invoke(self._process(), "read", key, None, self.cluster.now)
        self.counts["read"] += 1

        def done(reply: Any, error: BaseException | None) -> None:
            now = self.cluster.now
            if isinstance(error, NotFound):
                value = None
            elif error is not None or reply is None:
                self.history.info(op, now)
                if error is not None and not isinstance(error, Unavailable):
                    self._finding(f"get {key} linearizable", error)
                self._next(client)
                return
            else:
                value = reply["value"]
            self.history.ok(op, now, value)
            if then_cas:
                self._cas(client, node, key, value)
            else:
                self._next(client)

        args = {"ns": self.config.ns, "key": key, "linearizable": True}
        if not self._send(node, "get", args, done):
            self.history.fail(op, self.cluster.now)
            self._next(client)

    def _cas(self, client: _Client, node: int, key: str, expected: Any) -> None:
        new = self._fresh()
        op: Pending = self.history.invoke(
            self._process(), "cas", key, [expected, new], self.cluster.now
        )
        self.counts["cas"] += 1

        def done(reply: Any, error: BaseException | None) -> None:
            now = self.cluster.now
            if error is not None or reply is None:
                self.history.info(op, now)
                if error is not None and not isinstance(error, Unavailable):
                    self._finding(f"cas {key}", error)
            elif reply["ok"]:
                self.history.ok(op, now)
                self.counts["cas_ok"] += 1
            else:
                self.history.compare_failed(op, now, reply["value"] if reply["exists"] else None)
            self._next(client)

        args: dict[str, Any] = {"ns": self.config.ns, "key": key, "value": new}
        if expected is not None:
            args["expected"] = expected
        if not self._send(node, "cas", args, done):
            self.history.fail(op, self.cluster.now)
            self._next(client)

    def check(self) -> list[str]:
        """The checker's verdict on the CAS history: [] when linearizable."""
        result = self.history.check()
        self.counts["checked_ops"] = result.stats.operations
        if result.linearizable is True:
            return []
        return [f"CAS history is {describe(result)}"]

    # --- claims -----------------------------------------------------------------------

    def _claim_action(self, client: _Client, node: int) -> None:
        cfg = self.config
        key = f"t{self.rng.randrange(cfg.claim_keys)}"
        owner = f"agent{client.index}"
        sent = self.cluster.now
        held = client.holding.get(key)
        if held is not None and self.rng.random() < 0.3:
            token = held[0]
            del client.holding[key]
            self.claims.release(key, owner, sent * 1000)
            args = {"ns": cfg.claim_ns, "key": key, "owner": owner, "token": token}
            self.counts["release"] += 1
            if not self._send(node, "release", args, lambda r, e: self._claim_done(client, e)):
                self._next(client)
            return
        if held is not None:
            token = held[0]

            def renewed(reply: Any, error: BaseException | None) -> None:
                if reply is not None and reply["renewed"] and key in client.holding:
                    self._hold(client, key, owner, token, sent)
                    self.counts["renewed"] += 1
                self._claim_done(client, error)

            args = {"ns": cfg.claim_ns, "key": key, "owner": owner, "token": token}
            self.counts["renew"] += 1
            if not self._send(node, "renew", {**args, "lease": cfg.lease}, renewed):
                self._next(client)
            return

        def granted(reply: Any, error: BaseException | None) -> None:
            if reply is not None and reply["granted"]:
                self._hold(client, key, owner, reply["token"], sent)
                self.counts["granted"] += 1
            self._claim_done(client, error)

        args = {"ns": cfg.claim_ns, "key": key, "owner": owner, "lease": cfg.lease}
        self.counts["claim"] += 1
        if not self._send(node, "claim", args, granted):
            self._next(client)

    def _hold(self, client: _Client, key: str, owner: str, token: int, sent: float) -> None:
        now, end = self.cluster.now, sent + self.config.lease
        try:
            self.claims.hold(key, owner, token, now * 1000, end * 1000)
        except HistoryViolation as exc:
            self.violations.append(str(exc))
        if end > now:
            client.holding[key] = (token, end)

    def _claim_done(self, client: _Client, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, Unavailable):
            self._finding("claim", error)
        self._next(client)

    # --- conflicts escalated to the group ---------------------------------------------

    def _put(self, client: _Client, node: int) -> None:
        key = f"d{self.rng.randrange(self.config.conflict_keys)}"
        value = self._fresh()
        self.written[key].add(value)
        self.counts["put"] += 1

        def done(reply: Any, error: BaseException | None) -> None:
            if error is not None and not isinstance(error, Unavailable):
                self._finding(f"put {self.config.ns}/{key}", error)
            self._next(client)

        args = {"ns": self.config.ns, "key": key, "value": value}
        if not self._send(node, "put", args, done):
            self._next(client)

    def undecided(self) -> list[str]:
        """Keys of the consensus namespace still in conflict on a live node."""
        out = []
        for sn in self.cluster.live():
            assert sn.store is not None
            for key in sorted(self.written):
                entry = sn.store.get(self.config.ns, key)
                if entry is not None and entry.mv is not None and len(entry.mv.siblings()) > 1:
                    out.append(f"n{sn.index} {key}")
        return out

    def check_decided(self) -> list[str]:
        """Every conflict decided on every live node, for a value that was written."""
        out = [f"{where}: still in conflict after the run settled" for where in self.undecided()]
        for sn in self.cluster.live():
            assert sn.store is not None
            for key, values in sorted(self.written.items()):
                entry = sn.store.get(self.config.ns, key)
                if entry is None or entry.mv is None:
                    continue
                for _, version in entry.mv.siblings():
                    if version.value not in values:
                        out.append(f"n{sn.index} {key}: holds {version.value!r}, never written")
        return out


class _Request:
    """A client request's context in the simulator (nothing to observe)."""

    observe = None
