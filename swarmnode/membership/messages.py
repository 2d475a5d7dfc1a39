"""The SWIM messages on the wire: plain msgpack maps, built and checked here.

Every message is a map with "t" (its type, in the `swim.` namespace) and "f"
(the sender's node id). `decode` checks every field of an untrusted map before
any state is touched and raises `DecodeError` for anything else, so a bad
packet is counted and dropped and never half-applied. Unknown extra fields are
ignored so that later versions may add some.

A fact (the unit of gossip and of push-pull state) is a map:
  n  node id (str)          i  incarnation (int >= 0)
  s  state: 0 alive, 1 suspect, 2 dead, 3 left
  a  [host, port] (required for alive and in push-pull)
  m  meta map (alive only, optional)
  b  id of the member that suspects or declares dead (optional)
  d  seconds since the member entered that state (push-pull only, optional)
  c  the member's cluster settings, a list of small non-negative ints (alive and
     suspect only; see `compat.py`). Added in protocol version 2: a fact without it
     comes from a version 1 node, and version 1 nodes ignore it, as they ignore every
     field they do not know, so messages of either version decode on both.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from swarmnode.errors import DecodeError
from swarmnode.membership.state import MemberState
from swarmnode.sansio import Address, Message

PING = "swim.ping"
ACK = "swim.ack"
PING_REQ = "swim.ping_req"
NACK = "swim.nack"
GOSSIP = "swim.gossip"
PUSH_PULL = "swim.pp"

MAX_NODE_ID_BYTES = 64
"""UTF-8 bytes. Ids appear up to twice in a header; 64 keeps the worst header plus the
piggyback budget inside one datagram (a UUID is 36)."""
MAX_META_ENTRIES = 16
MAX_META_KEY_CHARS = 64
MAX_META_VALUE_CHARS = 256
MAX_GOSSIP_FACTS = 1024
"""More facts than fit any datagram; a longer list is malformed, not just large."""
MAX_STATE_FACTS = 200_000
"""Push-pull state bound: far above any cluster swarmnode aims at."""
MAX_SEQ = 2**63 - 1
MAX_INCARNATION = 2**63 - 1
MAX_AGE = 10 * 365 * 86400.0
MAX_SETTINGS = 16
"""Cluster settings a fact may carry; more is malformed (version 2 sends five)."""
_STATES = tuple(MemberState)


@dataclass(frozen=True)
class Fact:
    """One claim about one member."""

    node_id: str
    incarnation: int
    state: MemberState
    addr: Address | None = None
    meta: dict[str, Any] | None = None
    by: str | None = None
    age: float | None = None
    settings: tuple[int, ...] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"n": self.node_id, "i": self.incarnation, "s": int(self.state)}
        if self.addr is not None:
            wire["a"] = [self.addr[0], self.addr[1]]
        if self.meta:
            wire["m"] = dict(self.meta)
        if self.by is not None:
            wire["b"] = self.by
        if self.age is not None:
            wire["d"] = self.age
        if self.settings is not None:
            wire["c"] = list(self.settings)
        return wire


@dataclass(frozen=True)
class Ping:
    sender: str
    seq: int
    target: str
    gossip: tuple[Fact, ...]


@dataclass(frozen=True)
class Ack:
    """`target` is the member whose liveness the ack proves: the sender itself for a direct
    ack, the probed member for an ack a relay forwards."""

    sender: str
    seq: int
    target: str
    gossip: tuple[Fact, ...]


@dataclass(frozen=True)
class PingReq:
    sender: str
    seq: int
    target: str
    target_addr: Address
    want_nack: bool
    gossip: tuple[Fact, ...]


@dataclass(frozen=True)
class Nack:
    sender: str
    seq: int
    gossip: tuple[Fact, ...]


@dataclass(frozen=True)
class Gossip:
    sender: str
    gossip: tuple[Fact, ...]


@dataclass(frozen=True)
class PushPull:
    sender: str
    reply_wanted: bool
    members: tuple[Fact, ...]


Decoded = Ping | Ack | PingReq | Nack | Gossip | PushPull


def ping(sender: str, seq: int, target: str, gossip: list[dict[str, Any]]) -> Message:
    return _with_gossip({"t": PING, "f": sender, "s": seq, "n": target}, gossip)


def ack(sender: str, seq: int, target: str, gossip: list[dict[str, Any]]) -> Message:
    msg: Message = {"t": ACK, "f": sender, "s": seq}
    if target != sender:
        msg["n"] = target
    return _with_gossip(msg, gossip)


def ping_req(
    sender: str,
    seq: int,
    target: str,
    target_addr: Address,
    gossip: list[dict[str, Any]],
) -> Message:
    msg = {"t": PING_REQ, "f": sender, "s": seq, "n": target, "a": list(target_addr), "k": True}
    return _with_gossip(msg, gossip)


def nack(sender: str, seq: int, gossip: list[dict[str, Any]]) -> Message:
    return _with_gossip({"t": NACK, "f": sender, "s": seq}, gossip)


def gossip(sender: str, facts: list[dict[str, Any]]) -> Message:
    return {"t": GOSSIP, "f": sender, "g": facts}


def push_pull(sender: str, reply_wanted: bool, members: list[dict[str, Any]]) -> Message:
    return {"t": PUSH_PULL, "f": sender, "r": reply_wanted, "ms": members}


def _with_gossip(msg: Message, facts: list[dict[str, Any]]) -> Message:
    if facts:
        msg["g"] = facts
    return msg


def decode(msg: Any) -> Decoded:
    """Check an untrusted message and return its typed form, or raise `DecodeError`."""
    if not isinstance(msg, dict):
        raise DecodeError("swim message must be a map")
    kind = msg.get("t")
    sender = node_id(msg.get("f"), "f")
    if kind == PING:
        return Ping(sender, _seq(msg), node_id(msg.get("n"), "n"), _gossip(msg))
    if kind == ACK:
        target = msg.get("n", sender)
        return Ack(sender, _seq(msg), node_id(target, "n"), _gossip(msg))
    if kind == PING_REQ:
        return PingReq(
            sender,
            _seq(msg),
            node_id(msg.get("n"), "n"),
            address(msg.get("a"), "a"),
            _flag(msg.get("k", False), "k"),
            _gossip(msg),
        )
    if kind == NACK:
        return Nack(sender, _seq(msg), _gossip(msg))
    if kind == GOSSIP:
        return Gossip(sender, _gossip(msg))
    if kind == PUSH_PULL:
        members = _list(msg.get("ms"), "ms", MAX_STATE_FACTS)
        facts = tuple(fact(item, in_state=True) for item in members)
        return PushPull(sender, _flag(msg.get("r"), "r"), facts)
    raise DecodeError(f"unknown swim message type {kind!r}")


def fact(wire: Any, *, in_state: bool = False) -> Fact:
    """Check one fact; push-pull facts (`in_state`) must carry the member's address."""
    if not isinstance(wire, dict):
        raise DecodeError("fact must be a map")
    state_code = wire.get("s")
    if type(state_code) is not int or not 0 <= state_code < len(_STATES):
        raise DecodeError("fact state must be 0..3")
    state = _STATES[state_code]
    addr = None
    if "a" in wire:
        addr = address(wire["a"], "a")
    elif in_state or state is MemberState.ALIVE:
        raise DecodeError("fact lacks the member's address")
    meta = None
    if "m" in wire:
        if state is not MemberState.ALIVE:
            raise DecodeError("only alive facts carry meta")
        meta = check_meta(wire["m"])
    by = node_id(wire["b"], "b") if "b" in wire else None
    age = None
    if "d" in wire:
        age = wire["d"]
        if type(age) not in (int, float) or not (math.isfinite(age) and 0 <= age <= MAX_AGE):
            raise DecodeError("fact age must be seconds in range")
        age = float(age)
    incarnation = wire.get("i")
    if type(incarnation) is not int or not 0 <= incarnation <= MAX_INCARNATION:
        raise DecodeError("incarnation must be a non-negative int")
    settings = None
    if "c" in wire:
        if not state.live:
            raise DecodeError("only alive and suspect facts carry settings")
        settings = _settings(wire["c"])
    return Fact(node_id(wire.get("n"), "n"), incarnation, state, addr, meta, by, age, settings)


def _settings(value: Any) -> tuple[int, ...]:
    """Every alive fact carries these, so the check is a plain loop: a generator costs
    twice as much here."""
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_SETTINGS:
        raise DecodeError(f"c: settings must be 1..{MAX_SETTINGS} non-negative ints")
    for v in value:
        if type(v) is not int or v < 0 or v > MAX_SEQ:
            raise DecodeError(f"c: settings must be 1..{MAX_SETTINGS} non-negative ints")
    return tuple(value)


def node_id(value: Any, name: str) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_NODE_ID_BYTES:
        raise DecodeError(f"{name}: node id must be a string of 1..{MAX_NODE_ID_BYTES} bytes")
    if not value.isascii():
        _check_utf8(value)
        if len(value.encode("utf-8")) > MAX_NODE_ID_BYTES:
            raise DecodeError(f"{name}: node id longer than {MAX_NODE_ID_BYTES} bytes")
    return value


def address(value: Any, name: str) -> Address:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DecodeError(f"{name}: address must be [host, port]")
    host, port = value
    if type(host) is not str or not _is_ip_literal(host):
        raise DecodeError(f"{name}: host must be a literal IP address")
    if type(port) is not int or not 0 < port < 65536:
        raise DecodeError(f"{name}: port must be 1..65535")
    return (host, port)


def check_meta(value: Any) -> dict[str, Any]:
    """Meta is a small flat map of str to str, int or bool, the same bound on every node."""
    if not isinstance(value, dict) or len(value) > MAX_META_ENTRIES:
        raise DecodeError(f"meta must be a map of at most {MAX_META_ENTRIES} entries")
    for key, item in value.items():
        if type(key) is not str or not 0 < len(key) <= MAX_META_KEY_CHARS:
            raise DecodeError("meta keys must be short strings")
        _check_utf8(key)
        if type(item) is str:
            if len(item) > MAX_META_VALUE_CHARS:
                raise DecodeError("meta string value too long")
            _check_utf8(item)
        elif type(item) is int:
            if not -(2**63) <= item < 2**63:
                raise DecodeError("meta int out of range")
        elif type(item) is not bool:
            raise DecodeError("meta values must be str, int or bool")
    return dict(value)


def _check_utf8(text: str) -> None:
    """msgpack cannot encode lone surrogates; refuse them before they are stored and re-sent."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError("string is not valid UTF-8") from None


@lru_cache(maxsize=4096)
def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _seq(msg: dict[str, Any]) -> int:
    seq = msg.get("s")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise DecodeError("s: sequence number must be a non-negative int")
    return seq


def _flag(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{name}: must be a boolean")
    return value


def _list(value: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(value, list | tuple) or len(value) > limit:
        raise DecodeError(f"{name}: must be a list of at most {limit} items")
    return value


def _gossip(msg: dict[str, Any]) -> tuple[Fact, ...]:
    if "g" not in msg:
        return ()
    return tuple(fact(item) for item in _list(msg["g"], "g", MAX_GOSSIP_FACTS))
