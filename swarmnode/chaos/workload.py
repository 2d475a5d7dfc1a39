"""Concurrent clients on several nodes, every operation recorded in the history.

Each client is a thread with a home node (and, now and then, another node),
its own connections, and a seeded random source that draws its operations.
What is drawn is one of the operation kinds of `KINDS`, each of which knows
its keys, how to call the node, and how its outcome is written down:

- CRDT registers `r*`: `put` (a value no other write uses), `get`;
- CRDT registers `d*`: the same plus `delete`;
- the consensus group's registers `x*` (in `decisions`): `cas` from the value
  the client last saw and linearizable `read`, when the node offers `cas`.
  Only these use the history's register functions (`cas`, `read`), so the
  linearizability checker judges exactly them (`put`/`get` are CRDT
  operations, eventually consistent, and skipped by it). A `cas` that did not
  swap is `fail`;
- counters `c*`: `incr` by 1, 2 or 5;
- sets `s*`: `sadd`, `srem` of a few members;
- `t*`: `put_ttl`, writes with a TTL of 1 to 3 s;
- vectors: `vput` of a new key with a random 4-dimension vector, `vsearch`
  for an acknowledged one;
- claims `l*`: `claim` by a fresh owner, when the node offers it (a lease of
  `CLAIM_LEASE` seconds; the value recorded is `[granted, token]`).

`cas` and `claim` are probed once at the start: a node that answers
`bad_request` "unknown operation" does not offer them, and they are left out.

Outcomes: a reply is `ok`; an error reply from the node is `fail` (the node
refused it), except `unavailable` for an operation that writes, which is
`info`: the consensus group answers it when a command was not settled in
time, and such a command may still take effect (the one-hour soak saw a `cas`
answered `unavailable` and applied). A request that never left (the connect
failed) is `fail`; a timeout or a connection lost after sending is `info` for
an operation that writes, `fail` for a read (a read has no effect either way). After an `info`
the client goes on under a fresh process number and backs off a little.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmnode.chaos.history import FAIL, INFO, OK, History
from swarmnode.client import Client
from swarmnode.errors import BadRequest, NotFound, SwarmError, Unavailable

log = logging.getLogger("swarmnode.chaos.workload")

NS = "chaos"
VEC_NS = "chaosvec"
CAS_NS = "decisions"
"""The consensus group's registers (`cas`, linearizable `read`) live in a namespace of
policy consensus; the built-in `decisions` is one."""
VEC_DIM = 4
CLAIM_LEASE = 2.0
"""Seconds a claim lasts; the claims oracle judges grants against it."""
READ_ONLY = frozenset({"get", "read", "vsearch", "smembers"})
_LOCAL_FAILURES = ("cannot reach swarmnode",)


@dataclass
class WorkloadConfig:
    clients: int = 6
    # Nodes the clients are homed on (None: all of them, round robin).
    client_nodes: tuple[int, ...] | None = None
    # Chance an operation goes to the client's home node rather than another.
    stickiness: float = 0.8
    # Mean operations per second of one client (exponential gaps).
    rate: float = 20.0
    # Seconds before an operation counts as unknown (info).
    timeout: float = 5.0
    registers: int = 4
    deletable: int = 3
    counters: int = 3
    sets: int = 3
    members: int = 6
    ttl_keys: int = 3
    claims: int = 2
    # Registers of the consensus group (cas and linearizable reads).
    cas_keys: int = 2
    # Relative weights of the kinds (a kind the node does not offer is dropped).
    mix: dict[str, float] = field(
        default_factory=lambda: {
            "put": 4,
            "get": 3,
            "delete": 1,
            "cas": 2,
            "read": 1,
            "incr": 3,
            "sadd": 2,
            "srem": 1,
            "put_ttl": 1,
            "vput": 1,
            "vsearch": 1,
            "claim": 1,
        }
    )


def classify_error(exc: SwarmError, writes: bool) -> str:
    """The history type of an operation that raised `exc`."""
    if isinstance(exc, Unavailable):
        text = exc.message
        if text.startswith(_LOCAL_FAILURES):
            return FAIL
        return INFO if writes else FAIL
    if exc.code == "internal":
        return INFO if writes else FAIL
    return FAIL


def probe_ops(client: Client) -> set[str]:
    """Which optional operations (cas, claim) the node offers."""
    offered = set()
    probes: dict[str, Callable[[], Any]] = {
        "cas": lambda: client.call("cas", ns=CAS_NS, key="probe:cas", expected=None, value=0),
        "claim": lambda: client.call("claim", ns=NS, key="probe:claim", owner="probe", lease=1.0),
    }
    for name, call in probes.items():
        try:
            call()
        except BadRequest as exc:
            if "unknown operation" in exc.message:
                continue
        except SwarmError:
            pass
        offered.add(name)
    return offered


class Workload:
    """Client threads issuing operations until `stop()`."""

    def __init__(
        self,
        sockets: Callable[[int], Any],
        nodes: int,
        history: History,
        config: WorkloadConfig,
        seed: int,
        offered: set[str] = frozenset(),
    ) -> None:
        self.sockets = sockets
        self.nodes = nodes
        self.history = history
        self.config = config
        self.seed = seed
        self.offered = set(offered)
        cfg = config
        self.keys = {
            "r": [f"r{i}" for i in range(cfg.registers)],
            "d": [f"d{i}" for i in range(cfg.deletable)],
            "c": [f"c{i}" for i in range(cfg.counters)],
            "s": [f"s{i}" for i in range(cfg.sets)],
            "t": [f"t{i}" for i in range(cfg.ttl_keys)],
            "l": [f"l{i}" for i in range(cfg.claims)],
            "x": [f"x{i}" for i in range(cfg.cas_keys)],
        }
        self.members = [f"m{i}" for i in range(cfg.members)]
        kinds = {k: w for k, w in cfg.mix.items() if w > 0}
        for optional in ("cas", "claim"):
            if optional not in self.offered:
                kinds.pop(optional, None)
        if "cas" not in self.offered:
            kinds.pop("read", None)  # linearizable reads of the group's registers
        self.kinds = sorted(kinds)
        self.weights = [kinds[k] for k in self.kinds]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._values = 0
        self._processes = cfg.clients
        self._vectors: list[tuple[str, list[float]]] = []
        self._vkeys = 0

    # --- running ------------------------------------------------------------------

    def start(self) -> None:
        homes = self.config.client_nodes or tuple(range(self.nodes))
        for c in range(self.config.clients):
            home = homes[c % len(homes)]
            t = threading.Thread(target=self._client, args=(c, home), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.config.timeout * 3 + 10)

    def _fresh_value(self) -> int:
        with self._lock:
            self._values += 1
            return self._values

    def _fresh_process(self) -> int:
        with self._lock:
            p = self._processes
            self._processes += 1
            return p

    def _client(self, index: int, home: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        process = index
        clients: dict[int, Client] = {}
        known: dict[str, Any] = {}
        try:
            while not self._stop.wait(rng.expovariate(self.config.rate)):
                node = home
                if self.nodes > 1 and rng.random() >= self.config.stickiness:
                    node = rng.choice([n for n in range(self.nodes) if n != home])
                if node not in clients:
                    clients[node] = Client(self.sockets(node), timeout=self.config.timeout)
                kind = rng.choices(self.kinds, weights=self.weights)[0]
                outcome = self._issue(clients[node], node, process, kind, rng, known)
                if outcome == INFO:
                    process = self._fresh_process()
                    clients.pop(node).close()
                    self._stop.wait(0.5)
                elif outcome == FAIL:
                    self._stop.wait(0.05)
        finally:
            for c in clients.values():
                c.close()

    # --- one operation ---------------------------------------------------------------

    def _issue(
        self, client: Client, node: int, process: int, kind: str, rng: random.Random, known: dict
    ) -> str:
        f, key, value, call, read = self._draw(client, kind, rng, known)
        op = self.history.invoke(process, f, key, value, node)
        try:
            result = call()
        except NotFound:
            if f in ("get", "read"):
                self.history.complete(op, OK, None)
                known[key] = None
                return OK
            self.history.complete(op, FAIL, error="not_found")
            return FAIL
        except SwarmError as exc:
            outcome = classify_error(exc, f not in READ_ONLY)
            self.history.complete(op, outcome, error=f"{exc.code}: {exc.message}"[:300])
            return outcome
        except OSError as exc:
            outcome = INFO if f not in READ_ONLY else FAIL
            self.history.complete(op, outcome, error=f"os: {exc}"[:300])
            return outcome
        value_out, detail = read(result)
        if f == "cas" and not result["ok"]:
            # Not swapped: it certainly did not take effect (what the register held is
            # worth knowing for the next expected value).
            self.history.complete(op, FAIL, error="cas: expected value not held", detail=detail)
            known[key] = result.get("value") if result.get("exists") else None
            return FAIL
        self.history.complete(op, OK, value_out, detail=detail)
        if f in ("get", "put", "read") and key is not None:
            known[key] = value_out
        if f == "cas":
            known[key] = value_out[1]
        if f == "vput":
            with self._lock:
                self._vectors.append((key, op.detail["vector"]))
        return OK

    def _draw(
        self, client: Client, kind: str, rng: random.Random, known: dict
    ) -> tuple[str, str | None, Any, Callable[[], Any], Callable[[Any], tuple[Any, dict]]]:
        if kind == "put":
            key = rng.choice(self.keys["r"] + self.keys["d"])
            v = self._fresh_value()
            return "put", key, v, lambda: client.put(NS, key, v), lambda r: (v, {"ts": r["ts"]})
        if kind == "get":
            key = rng.choice(self.keys["r"] + self.keys["d"])
            return (
                "get",
                key,
                None,
                lambda: client.get(NS, key),
                lambda r: (r["value"], {"ts": r["ts"]}),
            )
        if kind == "read":
            key = rng.choice(self.keys["x"])
            return (
                "read",
                key,
                None,
                lambda: client.call("get", ns=CAS_NS, key=key, linearizable=True),
                lambda r: (r["value"], {}),
            )
        if kind == "delete":
            key = rng.choice(self.keys["d"])
            return (
                "delete",
                key,
                None,
                lambda: client.delete(NS, key),
                lambda r: (r["deleted"], {}),
            )
        if kind == "cas":
            key = rng.choice(self.keys["x"])
            expected = known.get(key)
            new = self._fresh_value()
            return (
                "cas",
                key,
                [expected, new],
                lambda: client.cas(CAS_NS, key, new, expected=expected),
                lambda r: ([expected, new], {}),
            )
        if kind == "incr":
            key = rng.choice(self.keys["c"])
            by = rng.choice((1, 1, 2, 5))
            return (
                "incr",
                key,
                by,
                lambda: client.incr(NS, key, by),
                lambda r: (by, {"after": r["value"]}),
            )
        if kind in ("sadd", "srem"):
            key = rng.choice(self.keys["s"])
            member = rng.choice(self.members)
            call = client.sadd if kind == "sadd" else client.srem
            return kind, key, member, lambda: call(NS, key, [member]), lambda r: (member, {})
        if kind == "put_ttl":
            key = rng.choice(self.keys["t"])
            v = self._fresh_value()
            ttl = round(rng.uniform(1.0, 3.0), 2)
            return (
                "put_ttl",
                key,
                [v, ttl],
                lambda: client.put(NS, key, v, ttl=ttl),
                lambda r: ([v, ttl], {"ts": r["ts"], "expires_at": r.get("expires_at")}),
            )
        if kind == "vput":
            with self._lock:
                self._vkeys += 1
                key = f"v{self._vkeys}"
            vec = [round(rng.gauss(0, 1), 4) for _ in range(VEC_DIM)]
            return (
                "vput",
                key,
                vec,
                lambda: client.put(VEC_NS, key, key, vector=vec),
                lambda r: (vec, {"ts": r["ts"], "vector": vec}),
            )
        if kind == "vsearch":
            with self._lock:
                target = rng.choice(self._vectors) if self._vectors else None
            vec = target[1] if target else [1.0] * VEC_DIM
            return (
                "vsearch",
                target[0] if target else None,
                vec,
                lambda: client.vsearch(VEC_NS, vec, k=3),
                lambda r: ([i["key"] for i in r["items"]], {}),
            )
        if kind == "claim":
            key = rng.choice(self.keys["l"])
            owner = f"p{rng.randrange(1 << 30)}"
            return (
                "claim",
                key,
                [owner, CLAIM_LEASE],
                lambda: client.call("claim", ns=NS, key=key, owner=owner, lease=CLAIM_LEASE),
                lambda r: ([r["granted"], r["token"]], {"holder": r["owner"]}),
            )
        raise ValueError(f"unknown kind {kind}")
