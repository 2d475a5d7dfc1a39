"""The replicated state machine behind the Raft group: CAS registers, task claims with
leases and fencing tokens, and first-wins conflict decisions.

`apply(index, data)` is deterministic: it reads nothing but the machine and the
committed command, never a clock, so every replica that applies the same log
holds the same state and returns the same results. Commands are msgpack maps
built by the functions at the bottom (`cas`, `claim`, ...); a malformed
command gets an error result, the same on every replica, and changes nothing.

Claims. `claim` grants an exclusive lease on (ns, key) to an owner and returns
a fencing token: the log index of the granting entry. Indexes only grow, so
the tokens of successive grants of a key strictly increase, and nothing has
to be remembered about a key once it is free. A lease lapses without any
clock in `apply`: the leader tracks lease ends on its own monotonic clock
(`leases.LeaseKeeper`) and proposes `expire` when one has passed. `expire`
names the token and the lease's last renewal (`lease_index`), so it frees
nothing that was renewed or granted again after the leader decided.

Bounded growth. Released and expired claims are deleted at once (tokens need
no memory, see above). A register lives until a `cas` sets it to absent.
Decisions are kept `DECISION_RETENTION_MS` (30 days, as the `decisions`
namespace) after they were decided, by the time the proposer stamped on the
command (`at_ms`, the leader's wall clock; the machine's clock is the largest
stamp seen, so it never reads a clock either), and at most `MAX_DECISIONS` of
them: beyond that the oldest go first. A proposal for a conflict whose
decision was pruned starts a new decision.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack

from swarmnode.errors import DecodeError

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
"""The value of a register that does not exist: `cas(..., expected=ABSENT, ...)` creates,
`cas(..., new=ABSENT)` deletes."""

MAX_NAME_BYTES = 256
"""Namespaces, owners and conflict ids (UTF-8 bytes)."""
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20
"""A register value or decision payload, msgpack-encoded."""
MAX_LEASE_MS = 24 * 3600 * 1000
DECISION_RETENTION_MS = 30 * 24 * 3600 * 1000
MAX_DECISIONS = 100_000
SNAPSHOT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Claim:
    owner: str
    token: int
    lease_ms: int
    lease_index: int
    """Index of the entry that granted or last renewed the lease."""


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """A lease started or was renewed at `lease_index` and lasts `lease_ms`."""

    ns: str
    key: str
    token: int
    lease_index: int
    lease_ms: int


@dataclass(frozen=True, slots=True)
class LeaseFreed:
    ns: str
    key: str


LeaseChange = LeaseGranted | LeaseFreed


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one entry gave: the result for whoever proposed it, and the change of
    lease it made, for the leader's `LeaseKeeper`."""

    result: dict[str, Any]
    lease: LeaseChange | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    payload: Any
    index: int
    at_ms: int


class CommandError(Exception):
    """A command that is not well formed; it becomes an error result."""


class StateMachine:
    def __init__(self) -> None:
        self.applied = 0
        self.clock_ms = 0
        self.registers: dict[tuple[str, str], Any] = {}
        self.claims: dict[tuple[str, str], Claim] = {}
        self.decisions: OrderedDict[str, _Decision] = OrderedDict()

    # ---- reads (local; linearizable when started after a ReadIndex) ---------------------

    def read(self, ns: str, key: str) -> Any:
        """The register's value, or ABSENT."""
        return self.registers.get((ns, key), ABSENT)

    def holder(self, ns: str, key: str) -> Claim | None:
        return self.claims.get((ns, key))

    def decision(self, conflict_id: str) -> Any:
        found = self.decisions.get(conflict_id)
        return ABSENT if found is None else found.payload

    def leases(self) -> list[LeaseGranted]:
        """Every lease in force, for a new leader's `LeaseKeeper`."""
        return [
            LeaseGranted(ns, key, c.token, c.lease_index, c.lease_ms)
            for (ns, key), c in self.claims.items()
        ]

    # ---- apply ---------------------------------------------------------------------------

    def apply(self, index: int, data: bytes) -> Applied:
        """Apply the committed entry at `index` (entries come in index order, each once)."""
        if index <= self.applied:
            raise ValueError(f"entry {index} applied twice (applied {self.applied})")
        self.applied = index
        if not data:
            return Applied({"ok": True, "noop": True})
        try:
            command = _decode_command(data)
            return self._apply(index, command)
        except CommandError as exc:
            return Applied({"ok": False, "error": "bad_request", "message": str(exc)})

    def _apply(self, index: int, c: dict[str, Any]) -> Applied:
        op = c["op"]
        if op == "cas":
            return Applied(self._cas(c))
        if op == "claim":
            return self._claim(index, c)
        if op == "renew":
            return self._renew(index, c)
        if op == "release":
            return self._free(c, "release")
        if op == "expire":
            return self._free(c, "expire")
        return Applied(self._decide(index, c))

    def _cas(self, c: dict[str, Any]) -> dict[str, Any]:
        where = (_name(c, "ns"), _key(c))
        expected = _value(c, "expected")
        current = self.registers.get(where, ABSENT)
        if not _same(current, expected):
            return _register_result(False, current)
        new = _value(c, "new")
        if new is ABSENT:
            self.registers.pop(where, None)
        else:
            self.registers[where] = new
        return _register_result(True, new)

    def _claim(self, index: int, c: dict[str, Any]) -> Applied:
        ns, key, owner, lease_ms = _name(c, "ns"), _key(c), _name(c, "owner"), _lease(c)
        held = self.claims.get((ns, key))
        if held is not None and held.owner != owner:
            return Applied({"ok": False, "owner": held.owner, "token": held.token})
        token = held.token if held is not None else index
        self.claims[(ns, key)] = Claim(owner, token, lease_ms, index)
        result = {"ok": True, "owner": owner, "token": token, "lease_ms": lease_ms}
        return Applied(result, LeaseGranted(ns, key, token, index, lease_ms))

    def _renew(self, index: int, c: dict[str, Any]) -> Applied:
        ns, key, owner, token = _name(c, "ns"), _key(c), _name(c, "owner"), _int(c, "token")
        lease_ms = _lease(c)
        held = self.claims.get((ns, key))
        if held is None or held.owner != owner or held.token != token:
            return Applied({"ok": False, "reason": "not_holder"})
        self.claims[(ns, key)] = Claim(owner, token, lease_ms, index)
        result = {"ok": True, "owner": owner, "token": token, "lease_ms": lease_ms}
        return Applied(result, LeaseGranted(ns, key, token, index, lease_ms))

    def _free(self, c: dict[str, Any], op: str) -> Applied:
        ns, key, token = _name(c, "ns"), _key(c), _int(c, "token")
        held = self.claims.get((ns, key))
        if op == "release":
            matches = held is not None and held.owner == _name(c, "owner")
        else:
            matches = held is not None and held.lease_index == _int(c, "lease_index")
        if held is None or held.token != token or not matches:
            return Applied({"ok": False, "reason": "not_holder"})
        del self.claims[(ns, key)]
        return Applied({"ok": True}, LeaseFreed(ns, key))

    def _decide(self, index: int, c: dict[str, Any]) -> dict[str, Any]:
        conflict_id, payload, at_ms = _name(c, "id"), _value(c, "payload"), _int(c, "at_ms")
        if payload is ABSENT:
            raise CommandError("decide needs a payload")
        self.clock_ms = max(self.clock_ms, at_ms)
        self._prune_decisions()
        found = self.decisions.get(conflict_id)
        if found is not None:
            return {"ok": False, "winner": found.payload, "index": found.index}
        self.decisions[conflict_id] = _Decision(payload, index, self.clock_ms)
        if len(self.decisions) > MAX_DECISIONS:
            self.decisions.popitem(last=False)
        return {"ok": True, "winner": payload, "index": index}

    def _prune_decisions(self) -> None:
        horizon = self.clock_ms - DECISION_RETENTION_MS
        while self.decisions:
            oldest = next(iter(self.decisions.values()))
            if oldest.at_ms >= horizon:
                break
            self.decisions.popitem(last=False)

    # ---- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole machine as msgpack bytes: the same bytes on every replica that applied
        the same entries."""
        registers = [[ns, key, value] for (ns, key), value in sorted(self.registers.items())]
        claims = [
            [ns, key, c.owner, c.token, c.lease_ms, c.lease_index]
            for (ns, key), c in sorted(self.claims.items())
        ]
        decisions = [[cid, d.payload, d.index, d.at_ms] for cid, d in self.decisions.items()]
        return msgpack.packb(
            [SNAPSHOT_FORMAT, self.applied, self.clock_ms, registers, claims, decisions]
        )

    @classmethod
    def restore(cls, data: bytes) -> StateMachine:
        """The machine a snapshot describes; empty data is the empty machine."""
        machine = cls()
        if not data:
            return machine
        try:
            fmt, applied, clock_ms, registers, claims, decisions = msgpack.unpackb(
                data, raw=False, strict_map_key=False
            )
        except Exception as exc:
            raise DecodeError(f"state machine snapshot is malformed: {exc}") from None
        if fmt != SNAPSHOT_FORMAT:
            raise DecodeError(f"state machine snapshot format {fmt!r}, not {SNAPSHOT_FORMAT}")
        machine.applied, machine.clock_ms = applied, clock_ms
        machine.registers = {(ns, key): value for ns, key, value in registers}
        machine.claims = {
            (ns, key): Claim(owner, token, lease_ms, lease_index)
            for ns, key, owner, token, lease_ms, lease_index in claims
        }
        machine.decisions = OrderedDict(
            (cid, _Decision(payload, index, at)) for cid, payload, index, at in decisions
        )
        return machine


# ---- commands ----------------------------------------------------------------------------


def cas(ns: str, key: str, expected: Any, new: Any) -> bytes:
    """Set (ns, key) to `new` if it holds `expected` (either may be ABSENT)."""
    command: dict[str, Any] = {"op": "cas", "ns": ns, "key": key}
    if expected is not ABSENT:
        command["expected"] = expected
    if new is not ABSENT:
        command["new"] = new
    return msgpack.packb(command)


def claim(ns: str, key: str, owner: str, lease_ms: int) -> bytes:
    """Take (ns, key) for `owner` for `lease_ms`; by its holder, a claim renews it."""
    command = {"op": "claim", "ns": ns, "key": key, "owner": owner, "lease_ms": lease_ms}
    return msgpack.packb(command)


def renew(ns: str, key: str, owner: str, token: int, lease_ms: int) -> bytes:
    return msgpack.packb(
        {"op": "renew", "ns": ns, "key": key, "owner": owner, "token": token, "lease_ms": lease_ms}
    )


def release(ns: str, key: str, owner: str, token: int) -> bytes:
    return msgpack.packb({"op": "release", "ns": ns, "key": key, "owner": owner, "token": token})


def expire(ns: str, key: str, token: int, lease_index: int) -> bytes:
    """Proposed by the leader's `LeaseKeeper` when the lease of that grant has lapsed."""
    return msgpack.packb(
        {"op": "expire", "ns": ns, "key": key, "token": token, "lease_index": lease_index}
    )


def decide(conflict_id: str, payload: Any, at_ms: int) -> bytes:
    """Propose `payload` for a conflict; the first committed proposal wins. `at_ms` is the
    proposer's wall clock (used only to prune old decisions)."""
    return msgpack.packb({"op": "decide", "id": conflict_id, "payload": payload, "at_ms": at_ms})


_FIELDS = {
    "cas": ({"ns", "key"}, {"expected", "new"}),
    "claim": ({"ns", "key", "owner", "lease_ms"}, set()),
    "renew": ({"ns", "key", "owner", "token", "lease_ms"}, set()),
    "release": ({"ns", "key", "owner", "token"}, set()),
    "expire": ({"ns", "key", "token", "lease_index"}, set()),
    "decide": ({"id", "payload", "at_ms"}, set()),
}


def _decode_command(data: bytes) -> dict[str, Any]:
    try:
        command = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise CommandError(f"command is not msgpack: {exc}") from None
    if not isinstance(command, dict) or command.get("op") not in _FIELDS:
        raise CommandError(f"command must be a map with op one of {sorted(_FIELDS)}")
    required, optional = _FIELDS[command["op"]]
    fields = set(command) - {"op"}
    if not required <= fields or fields - required - optional:
        raise CommandError(f"{command['op']} takes {sorted(required | optional)}")
    return command


def _name(c: dict[str, Any], field: str) -> str:
    value = c[field]
    if type(value) is not str or not 0 < len(value.encode("utf-8", "replace")) <= MAX_NAME_BYTES:
        raise CommandError(f"{field} must be a string of 1..{MAX_NAME_BYTES} bytes")
    return value


def _key(c: dict[str, Any]) -> str:
    value = c["key"]
    if type(value) is not str or not 0 < len(value.encode("utf-8", "replace")) <= MAX_KEY_BYTES:
        raise CommandError(f"key must be a string of 1..{MAX_KEY_BYTES} bytes")
    return value


def _int(c: dict[str, Any], field: str) -> int:
    value = c[field]
    if type(value) is not int or not 0 <= value < 2**63:
        raise CommandError(f"{field} must be a non-negative integer")
    return value


def _lease(c: dict[str, Any]) -> int:
    value = _int(c, "lease_ms")
    if not 0 < value <= MAX_LEASE_MS:
        raise CommandError(f"lease_ms must be in 1..{MAX_LEASE_MS}")
    return value


def _value(c: dict[str, Any], field: str) -> Any:
    if field not in c:
        return ABSENT
    value = c[field]
    if len(msgpack.packb(value)) > MAX_VALUE_BYTES:
        raise CommandError(f"{field} is larger than {MAX_VALUE_BYTES} bytes")
    return value


def _same(a: Any, b: Any) -> bool:
    """Equality of msgpack values, by type as well (1 is not True, 1 is not 1.0), with maps
    equal whatever the order of their keys."""
    if a is ABSENT or b is ABSENT:
        return a is b
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> bytes:
    if isinstance(value, dict):
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return b"m" + msgpack.packb(items)
    if isinstance(value, list | tuple):
        return b"l" + msgpack.packb([_canonical(v) for v in value])
    return b"s" + msgpack.packb(value)


def _register_result(ok: bool, value: Any) -> dict[str, Any]:
    if value is ABSENT:
        return {"ok": ok, "exists": False}
    return {"ok": ok, "exists": True, "value": value}
