"""Push-pull anti-entropy between two replicas, as a sans-IO state machine.

Gossip delivers most deltas; anti-entropy repairs what it lost. A round runs
between an initiator and one peer. The initiator drives it and the responder
keeps no state between messages, so a responder costs nothing when a round is
abandoned and needs no timeout of its own:

1. `ae.roots`: the initiator sends (hash, count) of every namespace root.
2. `ae.answer`: for each item that differs, the responder returns the node's
   children (fanout hashes and counts), or the sorted (key, digest) listing of
   its entries, paged by a cursor, when descending further would not pay: the
   node is a leaf, is empty on either side, or holds at most `list_threshold`
   keys on both sides. To the roots it adds the namespaces the initiator did
   not list.
3. `ae.query`: the initiator asks again about the children that differ (and
   for the next page of long listings); repeat until only listings are left.
4. From each listing the initiator knows, key by key, what the responder lacks
   or holds differently and what it lacks itself. `ae.xfer` pushes its own
   states and names the keys it wants; `ae.states` returns those states (and
   acknowledges the push). A key that differs on both sides travels both ways,
   and each side's CRDT join settles it.

Sharded namespaces (see `placement/`) are compared partition by partition,
and only between owners: their roots are never listed (the two nodes hold
different partitions, so the roots always differ); instead the initiator
queues the tree nodes of the partitions it owns together with the peer
(`PartitionSource.partition_items`), and a responder treats as equal any node
of a sharded namespace it declines to compare (a partition it does not own,
or one still being handed to it). One Merkle tree per partition is the
partition's subtree of the namespace's tree.

Every message stays under `max_message_bytes` (except one that carries a single
state larger than that; the transport streams big messages): answers say how
many query items they covered (`k`) and the initiator asks again for the rest.
Writes go on during a round: each side reads its tree at the moment it needs it,
so a change only makes the repair incomplete, and a later round finishes it.

Message fields (all messages carry "t" and the round id "r"; requests carry a
request id "q" that their answer echoes):

- ae.roots  {f: fanout, d: depth, all: bool, items: [item]}  (all: every local
  namespace is listed, so the responder reports the ones missing here)
- ae.query  {items: [item]}  where item = [ns, level, index, hash(16), count, after: str|nil]
- ae.answer {k: items covered, x: [ns only on the responder], res: [result]}
  where result = [pos, 0, child hashes(fanout*16), [child counts]]
             or [pos, 1, [[key, digest(16)], ...], more: bool]
  (an item covered with no result is equal on both sides)
- ae.refuse {why: str}  (the trees have different shapes)
- ae.xfer   {ns, s: [[key, state]], w: [wanted key]}
- ae.states {k: wanted keys covered, s: [[key, state]]}
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack

from swarmnode.errors import DecodeError
from swarmnode.replication.merkle import (
    DIGEST_BYTES,
    EMPTY_HASH,
    HASH_BYTES,
    MerkleTree,
    leaf_bits,
    leaf_range,
    position,
)
from swarmnode.sansio import Address, Message, Output
from swarmnode.settings import check_settings, refuse, require, setting

_MIN_MESSAGE_BYTES = 1024
_MAX_UINT = 1 << 63
_MAX_ITEMS = 1 << 20
"""The most elements one array of a message may hold; more is a malformed message."""
_ROUND_IDS = 1 << 32
_RESULT_SLACK = 16
"""Bytes reserved for the framing around one result (position, kind, array headers)."""
_CHILDREN_BYTES_PER_FANOUT = HASH_BYTES + 5
"""Upper bound of one child's share of a children result: its hash and its count."""


@dataclass(frozen=True)
class AntiEntropyConfig:
    """Knobs of anti-entropy. All nodes of a cluster must agree on the tree shape."""

    interval: float = setting(5.0, "s", low=0, above=True)
    """Seconds between two rounds started by a node (the node's loop reads it). It bounds
    how long a write gossip missed waits for repair. Lower it to repair faster, at the cost
    of more idle traffic (a round between converged peers costs one roots message and an
    empty answer, a few hundred bytes)."""
    round_timeout: float = setting(5.0, "s", low=0, above=True)
    """Seconds without any answer from the peer after which a round fails. Raise it on slow
    links or when answers carry large states over a stream."""
    max_concurrent_rounds: int = setting(4, "rounds", low=1)
    """Rounds this node runs as initiator at once; `sync` with many peers queues behind it.
    Raise it to repair from more peers in parallel, lower it to bound memory and CPU."""
    max_inflight: int = setting(4, "requests", low=1)
    """Requests of one round awaiting their answer; more overlaps round trips on big repairs."""
    max_message_bytes: int = setting(64 * 1024, "bytes", low=_MIN_MESSAGE_BYTES)
    """Upper bound (msgpack bytes) of each message built here; transfers are split to fit.
    Lower it to keep messages inside datagrams when the transport has no stream."""
    list_threshold: int = setting(32, "keys", low=1)
    """A differing subtree with at most this many keys on both sides is listed (key, digest)
    instead of descended. Higher: fewer round trips, more digest bytes per listing."""
    state_batch_keys: int = setting(256, "keys", low=1)
    """Keys whose states (or index entries) are read from the store in one call."""
    tree_fanout: int = setting(16, "children", low=2, high=256)
    """Children per node of every namespace tree, a power of two. Every node of a cluster
    must use the same tree shape (checked when nodes join). The store keeps its Merkle
    index in the same leaf layout (re-keyed at start when the shape changes)."""
    tree_depth: int = setting(4, "levels", low=1, high=24)
    """Levels below the root; see `tree_fanout`."""

    def __post_init__(self) -> None:
        check_settings(self, "antientropy")
        fanout, depth = self.tree_fanout, self.tree_depth
        require(
            fanout & (fanout - 1) == 0,
            "antientropy",
            "tree_fanout",
            fanout,
            "must be a power of two between 2 and 256",
        )
        try:
            leaf_bits(fanout, depth)
        except ValueError as exc:
            raise refuse("antientropy", "tree_depth", depth, str(exc)) from None

    @classmethod
    def lan(cls) -> AntiEntropyConfig:
        return cls()

    @classmethod
    def local(cls) -> AntiEntropyConfig:
        """Fast timers for tests on one host."""
        return cls(interval=0.5, round_timeout=1.0)


class EntrySource(Protocol):
    """What anti-entropy reads from the local store (the storage layer implements it).

    An unknown namespace has no tree and yields no entries and no states.
    """

    def namespaces(self) -> list[str]: ...

    def tree(self, ns: str) -> MerkleTree | None: ...

    def entries_in_leaves(
        self, ns: str, first_leaf: int, last_leaf: int
    ) -> list[tuple[str, bytes]]:
        """(key, digest) of the entries in leaves first_leaf..last_leaf, sorted by
        `merkle.position` (leaf, then UTF-8 key): the storage index order."""
        ...

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        """Encoded CRDT states of those of `keys` that exist."""
        ...


class PartitionSource(Protocol):
    """Which parts of sharded namespaces to compare (the node implements it)."""

    def partition_items(self, peer: Address) -> list[tuple[str, int, int]]:
        """Tree nodes (ns, level, index) of the partitions this node and `peer` both own."""
        ...

    def declines(self, ns: str, level: int, index: int) -> bool:
        """Whether this node will not compare tree node (level, index) of `ns` now."""
        ...


@dataclass(frozen=True)
class ApplyStates:
    """Join these states, received from `peer`, into namespace `ns` of the local store."""

    peer: Address
    ns: str
    states: list[tuple[str, bytes]]


@dataclass(frozen=True)
class RoundFinished:
    """A round this node started is over.

    `keys_sent` counts states pushed and acknowledged, `keys_received` states received.
    Bytes are msgpack sizes of both directions: `digest_bytes` for tree comparison
    (roots, queries, answers), `state_bytes` for transfers (states and the keys asking
    for them); `messages` counts both directions too. `reason` says why a round failed:
    "timeout", "busy" (too many rounds already), or "refused: ..." by the peer.
    """

    round_id: int
    peer: Address
    ok: bool
    keys_sent: int
    keys_received: int
    digest_bytes: int
    state_bytes: int
    duration: float
    messages: int = 0
    reason: str = ""


def encoded_size(msg: Any) -> int:
    """Size of a message (or part of one) on the wire, before the envelope."""
    return len(msgpack.packb(msg, use_bin_type=True))


@dataclass
class _Item:
    """A node the initiator wants compared (or, with `after`, listed past that key)."""

    ns: str
    level: int
    index: int
    after: str | None = None


@dataclass
class _WireItem:
    """A query item as received: the node and the initiator's view of it."""

    ns: str
    level: int
    index: int
    hash: bytes
    count: int
    after: str | None


@dataclass
class _Transfer:
    """State traffic still to do for one namespace of a round."""

    wants: deque[str] = field(default_factory=deque)
    push_keys: deque[str] = field(default_factory=deque)
    push_ranges: deque[tuple[int, int]] = field(default_factory=deque)
    ready: deque[tuple[str, bytes]] = field(default_factory=deque)


@dataclass
class _Request:
    """A request of a round awaiting its answer."""

    items: list[_Item] = field(default_factory=list)
    roots: bool = False
    transfer: bool = False
    ns: str = ""
    wants: list[str] = field(default_factory=list)
    pushed: int = 0


@dataclass
class _Round:
    id: int
    peer: Address
    started: float
    deadline: float
    queue: deque[_Item] = field(default_factory=deque)
    transfers: dict[str, _Transfer] = field(default_factory=dict)
    inflight: dict[int, _Request] = field(default_factory=dict)
    next_request: int = 0
    keys_sent: int = 0
    keys_received: int = 0
    digest_bytes: int = 0
    state_bytes: int = 0
    messages: int = 0

    def transfer(self, ns: str) -> _Transfer:
        return self.transfers.setdefault(ns, _Transfer())


class AntiEntropy:
    """Both roles of the anti-entropy protocol for one node."""

    def __init__(
        self,
        node_id: str,
        source: EntrySource,
        config: AntiEntropyConfig,
        rng: random.Random,
        partitions: PartitionSource | None = None,
    ) -> None:
        self.node_id = node_id
        self._source = source
        self._partitions = partitions
        self._config = config
        self._rng = rng
        self._bits = leaf_bits(config.tree_fanout, config.tree_depth)
        self._rounds: dict[int, _Round] = {}
        self._next_round = rng.randrange(_ROUND_IDS)
        self._empty_children = (bytes(HASH_BYTES * config.tree_fanout), [0] * config.tree_fanout)
        self._max_query_items = max(
            1, config.max_message_bytes // (config.tree_fanout * _CHILDREN_BYTES_PER_FANOUT + 16)
        )
        self._handlers: dict[str, Callable[[float, Address, Message], Output]] = {
            "ae.roots": self._on_roots,
            "ae.query": self._on_query,
            "ae.answer": self._on_answer,
            "ae.refuse": self._on_refuse,
            "ae.xfer": self._on_xfer,
            "ae.states": self._on_states,
        }

    @property
    def active_rounds(self) -> int:
        return len(self._rounds)

    def next_deadline(self) -> float | None:
        """When `tick` next has work: the earliest timeout of a running round."""
        return min((r.deadline for r in self._rounds.values()), default=None)

    def start_round(self, now: float, peer: Address) -> tuple[int, Output]:
        """Begin a round with `peer`; its end is a `RoundFinished` event with this id."""
        round_id = self._next_round
        self._next_round = (self._next_round + 1) % _ROUND_IDS
        if len(self._rounds) >= self._config.max_concurrent_rounds:
            busy = RoundFinished(round_id, peer, False, 0, 0, 0, 0, 0.0, 0, "busy")
            return round_id, Output(events=[busy])
        rnd = _Round(round_id, peer, now, now + self._config.round_timeout)
        self._rounds[round_id] = rnd
        out = Output()
        self._send_roots(rnd, out)
        if self._partitions is not None:
            for ns, level, index in self._partitions.partition_items(peer):
                rnd.queue.append(_Item(ns, level, index))
            self._pump(now, rnd, out)
        return round_id, out

    def receive(self, now: float, sender: Address, msg: Message) -> Output:
        """Handle one `ae.*` message; raises `DecodeError` (only) if it is malformed."""
        if not isinstance(msg, dict):
            raise DecodeError("an anti-entropy message is a map")
        kind = msg.get("t")
        handler = self._handlers.get(kind) if type(kind) is str else None
        if handler is None:
            raise DecodeError(f"unknown anti-entropy message type {kind!r}")
        return handler(now, sender, msg)

    def tick(self, now: float) -> Output:
        """Fail the rounds whose peer has been silent for `round_timeout`."""
        out = Output()
        for rnd in [r for r in self._rounds.values() if now >= r.deadline]:
            self._finish(now, rnd, False, "timeout", out)
        return out

    # Responder.

    def _on_roots(self, now: float, sender: Address, msg: Message) -> Output:
        round_id, request_id = _uint(msg, "r"), _uint(msg, "q")
        fanout, depth, complete = _uint(msg, "f"), _uint(msg, "d"), _bool(msg, "all")
        items = [self._wire_item(raw, roots=True) for raw in _list(msg, "items", _MAX_ITEMS)]
        if (fanout, depth) != (self._config.tree_fanout, self._config.tree_depth):
            mine = (self._config.tree_fanout, self._config.tree_depth)
            why = f"tree shape (fanout, depth) {(fanout, depth)} here {mine}"
            refusal = {"t": "ae.refuse", "r": round_id, "q": request_id, "why": why}
            return Output(send=[(sender, refusal)])
        listed = {item.ns for item in items}
        extra = sorted(set(self._source.namespaces()) - listed) if complete else []
        return self._answer(sender, round_id, request_id, items, extra)

    def _on_query(self, now: float, sender: Address, msg: Message) -> Output:
        round_id, request_id = _uint(msg, "r"), _uint(msg, "q")
        items = [self._wire_item(raw, roots=False) for raw in _list(msg, "items", _MAX_ITEMS)]
        return self._answer(sender, round_id, request_id, items, [])

    def _answer(
        self, to: Address, round_id: int, request_id: int, items: list[_WireItem], extra: list[str]
    ) -> Output:
        budget = self._config.max_message_bytes
        msg: Message = {
            "t": "ae.answer",
            "r": round_id,
            "q": request_id,
            "k": 0,
            "x": [],
            "res": [],
        }
        size = encoded_size(msg) + _RESULT_SLACK
        for ns in extra:
            grown = encoded_size(ns)
            if size + grown > budget // 2:
                break
            msg["x"].append(ns)
            size += grown
        results: list[list[Any]] = msg["res"]
        covered = 0
        for pos, item in enumerate(items):
            result = self._resolve(pos, item, budget - size, must=not results)
            if result is _DEFER:
                break
            covered += 1
            if result is not None:
                results.append(result)
                size += encoded_size(result)
        msg["k"] = covered
        return Output(send=[(to, msg)])

    def _resolve(self, pos: int, item: _WireItem, room: int, must: bool) -> Any:
        """This node's answer to one item: None if equal, a result, or _DEFER if it won't fit."""
        if self._partitions is not None and self._partitions.declines(
            item.ns, item.level, item.index
        ):
            return None
        tree = self._source.tree(item.ns)
        self._check_shape(tree)
        here_hash, here_count = tree.node(item.level, item.index) if tree else (EMPTY_HASH, 0)
        if item.after is None and (here_hash, here_count) == (item.hash, item.count):
            return None
        threshold = self._config.list_threshold
        listing = (
            item.after is not None
            or item.level == self._config.tree_depth
            or item.count == 0
            or here_count == 0
            or (item.count <= threshold and here_count <= threshold)
        )
        if listing:
            page = self._listing(tree, item, room - _RESULT_SLACK, must)
            if page is None:
                return _DEFER
            entries, more = page
            return [pos, 1, entries, more]
        assert tree is not None
        hashes, counts = tree.children(item.level, item.index)
        result = [pos, 0, hashes, counts]
        if not must and encoded_size(result) > room:
            return _DEFER
        return result

    def _listing(
        self, tree: MerkleTree | None, item: _WireItem, room: int, must: bool
    ) -> tuple[list[list[Any]], bool] | None:
        """One page of this node's entries under the item's node, past `item.after`."""
        if tree is None:
            return [], False
        first, last = tree.leaf_range(item.level, item.index)
        after = position(item.after, self._bits) if item.after is not None else None
        if after is not None:
            first = max(first, after[0])
        entries: list[list[Any]] = []
        used = 0
        batch_keys = max(1, room // (DIGEST_BYTES + 8))
        while first <= last:
            stop = tree.split_leaves(first, last, batch_keys)
            for key, digest in self._source.entries_in_leaves(item.ns, first, stop):
                if after is not None and position(key, self._bits) <= after:
                    continue
                entry = [key, digest]
                grown = encoded_size(entry)
                if used + grown > room and (entries or not must):
                    return (entries, True) if entries else None
                entries.append(entry)
                used += grown
            first = stop + 1
            after = None
        return entries, False

    def _on_xfer(self, now: float, sender: Address, msg: Message) -> Output:
        round_id, request_id, ns = _uint(msg, "r"), _uint(msg, "q"), _str(msg, "ns")
        states = _states(_list(msg, "s", _MAX_ITEMS))
        wants = [_check_str(k, "wanted key") for k in _list(msg, "w", _MAX_ITEMS)]
        out = Output()
        if states:
            out.events.append(ApplyStates(sender, ns, states))
        reply: Message = {"t": "ae.states", "r": round_id, "q": request_id, "k": 0, "s": []}
        budget = self._config.max_message_bytes
        size = encoded_size(reply) + _RESULT_SLACK
        covered = 0
        batch = self._config.state_batch_keys
        while covered < len(wants):
            keys = wants[covered : covered + batch]
            found = dict(self._source.states(ns, keys))
            for key in keys:
                state = found.get(key)
                if state is not None:
                    pair = [key, state]
                    grown = encoded_size(pair)
                    if size + grown > budget and reply["s"]:
                        reply["k"] = covered
                        out.send.append((sender, reply))
                        return out
                    reply["s"].append(pair)
                    size += grown
                covered += 1
        reply["k"] = covered
        out.send.append((sender, reply))
        return out

    # Initiator.

    def _send_roots(self, rnd: _Round, out: Output) -> None:
        budget = self._config.max_message_bytes
        names = sorted(self._source.namespaces())
        msg: Message = {
            "t": "ae.roots",
            "r": rnd.id,
            "q": rnd.next_request,
            "f": self._config.tree_fanout,
            "d": self._config.tree_depth,
            "all": True,
            "items": [],
        }
        size = encoded_size(msg) + _RESULT_SLACK
        wires = [self._item_to_wire(_Item(ns, 0, 0)) for ns in names]
        if size + sum(encoded_size(w) for w in wires) > budget:
            msg["all"] = False
            self._rng.shuffle(wires)
        for wire in wires:
            grown = encoded_size(wire)
            if size + grown > budget:
                break
            msg["items"].append(wire)
            size += grown
        items = [_Item(w[0], 0, 0) for w in msg["items"]]
        self._send(rnd, msg, _Request(items=items, roots=True), out)

    def _on_answer(self, now: float, sender: Address, msg: Message) -> Output:
        found = self._request_for(sender, msg)
        covered = _uint(msg, "k")
        extra = [_check_str(ns, "namespace") for ns in _list(msg, "x", _MAX_ITEMS)]
        raw_results = _list(msg, "res", _MAX_ITEMS)
        if found is None:
            return Output()
        rnd, request_id, request = found
        if request.transfer:
            raise DecodeError("an answer to a transfer request")
        asked = len(request.items)
        if covered > asked or (asked and covered == 0):
            raise DecodeError(f"answer covers {covered} of {asked} items")
        if extra and not request.roots:
            raise DecodeError("extra namespaces outside a roots answer")
        results = self._parse_results(raw_results, request.items, covered)
        self._accept(now, rnd, request_id, msg, digest=True)
        rnd.queue.extendleft(reversed(request.items[covered:]))
        for ns in extra:
            rnd.queue.append(_Item(ns, 0, 0))
        for item, result in results:
            if isinstance(result, _Children):
                self._compare_children(rnd, item, result)
            else:
                self._compare_listing(rnd, item, result)
        out = Output()
        self._pump(now, rnd, out)
        return out

    def _parse_results(
        self, raw_results: list[Any], items: list[_Item], covered: int
    ) -> list[tuple[_Item, _Children | _Listing]]:
        parsed: list[tuple[_Item, _Children | _Listing]] = []
        last_pos = -1
        fanout = self._config.tree_fanout
        for raw in raw_results:
            fields = _check_list(raw, "result", 4)
            pos, kind = _check_uint(fields[0], "position"), fields[1]
            if not last_pos < pos < covered:
                raise DecodeError(f"result position {pos} out of order or not covered")
            last_pos = pos
            item = items[pos]
            if kind == 0 and type(kind) is int:
                if item.after is not None or item.level == self._config.tree_depth:
                    raise DecodeError("children for a listing")
                hashes = _check_bytes(fields[2], "child hashes", HASH_BYTES * fanout)
                counts = [_check_uint(c, "child count") for c in _check_list(fields[3], "counts")]
                if len(counts) != fanout:
                    raise DecodeError(f"{len(counts)} child counts for fanout {fanout}")
                parsed.append((item, _Children(hashes, counts)))
            elif kind == 1 and type(kind) is int:
                parsed.append((item, self._parse_listing(item, fields[2], fields[3])))
            else:
                raise DecodeError(f"unknown result kind {kind!r}")
        return parsed

    def _parse_listing(self, item: _Item, raw_entries: Any, more: Any) -> _Listing:
        if type(more) is not bool:
            raise DecodeError("listing `more` is not a bool")
        first, last = leaf_range(
            item.level, item.index, self._config.tree_fanout, self._config.tree_depth
        )
        previous = position(item.after, self._bits) if item.after is not None else None
        entries: list[tuple[str, bytes]] = []
        for raw in _check_list(raw_entries, "listing"):
            pair = _check_list(raw, "entry", 2)
            key = _check_str(pair[0], "key")
            digest = _check_bytes(pair[1], "digest", DIGEST_BYTES)
            at = position(key, self._bits)
            if not first <= at[0] <= last or (previous is not None and at <= previous):
                raise DecodeError(f"listed key {key!r} out of order or outside the node")
            previous = at
            entries.append((key, digest))
        if more and not entries:
            raise DecodeError("an empty listing page with more to come")
        return _Listing(entries, more, previous)

    def _compare_children(self, rnd: _Round, item: _Item, theirs: _Children) -> None:
        tree = self._source.tree(item.ns)
        self._check_shape(tree)
        hashes, counts = tree.children(item.level, item.index) if tree else self._empty_children
        level = item.level + 1
        for child in range(self._config.tree_fanout):
            span = slice(child * HASH_BYTES, (child + 1) * HASH_BYTES)
            mine = (hashes[span], counts[child])
            if mine == (theirs.hashes[span], theirs.counts[child]):
                continue
            index = item.index * self._config.tree_fanout + child
            if theirs.counts[child] == 0:
                if counts[child]:
                    rnd.transfer(item.ns).push_ranges.append(self._leaf_range(level, index))
            else:
                rnd.queue.append(_Item(item.ns, level, index))

    def _compare_listing(self, rnd: _Round, item: _Item, page: _Listing) -> None:
        first, last = self._leaf_range(item.level, item.index)
        work = rnd.transfer(item.ns)
        if item.after is None and not page.entries and not page.more:
            work.push_ranges.append((first, last))
            return
        start = position(item.after, self._bits) if item.after is not None else None
        end = page.last if page.more else None
        low = start[0] if start is not None else first
        high = end[0] if end is not None else last
        theirs = dict(page.entries)
        for key, digest in self._source.entries_in_leaves(item.ns, low, high):
            at = position(key, self._bits)
            if (start is not None and at <= start) or (end is not None and at > end):
                continue
            their_digest = theirs.pop(key, None)
            if their_digest != digest:
                work.push_keys.append(key)
                if their_digest is not None:
                    work.wants.append(key)
        work.wants.extend(theirs)
        if page.more:
            rnd.queue.append(_Item(item.ns, item.level, item.index, page.entries[-1][0]))

    def _on_refuse(self, now: float, sender: Address, msg: Message) -> Output:
        found = self._request_for(sender, msg)
        why = _str(msg, "why")
        out = Output()
        if found is not None:
            self._finish(now, found[0], False, f"refused: {why}", out)
        return out

    def _on_states(self, now: float, sender: Address, msg: Message) -> Output:
        found = self._request_for(sender, msg)
        covered = _uint(msg, "k")
        states = _states(_list(msg, "s", _MAX_ITEMS))
        if found is None:
            return Output()
        rnd, request_id, request = found
        if not request.transfer:
            raise DecodeError("states answering a query")
        wants = request.wants
        if covered > len(wants) or (wants and covered == 0):
            raise DecodeError(f"states cover {covered} of {len(wants)} wanted keys")
        asked = set(wants[:covered])
        if len({key for key, _ in states}) != len(states) or any(k not in asked for k, _ in states):
            raise DecodeError("states for keys that were not asked for")
        self._accept(now, rnd, request_id, msg, digest=False)
        rnd.keys_sent += request.pushed
        rnd.keys_received += len(states)
        rnd.transfer(request.ns).wants.extendleft(reversed(wants[covered:]))
        out = Output()
        if states:
            out.events.append(ApplyStates(rnd.peer, request.ns, states))
        self._pump(now, rnd, out)
        return out

    def _request_for(self, sender: Address, msg: Message) -> tuple[_Round, int, _Request] | None:
        """The round and request an answer belongs to; None for a stale or stray answer."""
        round_id, request_id = _uint(msg, "r"), _uint(msg, "q")
        rnd = self._rounds.get(round_id)
        if rnd is None or rnd.peer != sender or request_id not in rnd.inflight:
            return None
        return rnd, request_id, rnd.inflight[request_id]

    def _accept(self, now: float, rnd: _Round, request_id: int, msg: Message, digest: bool) -> None:
        del rnd.inflight[request_id]
        rnd.deadline = now + self._config.round_timeout
        rnd.messages += 1
        if digest:
            rnd.digest_bytes += encoded_size(msg)
        else:
            rnd.state_bytes += encoded_size(msg)

    def _pump(self, now: float, rnd: _Round, out: Output) -> None:
        """Send what the round can send now; finish it when nothing is left to do or await."""
        while len(rnd.inflight) < self._config.max_inflight:
            if not (self._send_transfer(rnd, out) or self._send_query(rnd, out)):
                break
        if not rnd.inflight:
            self._finish(now, rnd, True, "", out)

    def _send_query(self, rnd: _Round, out: Output) -> bool:
        if not rnd.queue:
            return False
        msg: Message = {"t": "ae.query", "r": rnd.id, "q": rnd.next_request, "items": []}
        budget = self._config.max_message_bytes
        size = encoded_size(msg) + _RESULT_SLACK
        items: list[_Item] = []
        while rnd.queue and len(items) < self._max_query_items:
            wire = self._item_to_wire(rnd.queue[0])
            grown = encoded_size(wire)
            if items and size + grown > budget:
                break
            items.append(rnd.queue.popleft())
            msg["items"].append(wire)
            size += grown
        self._send(rnd, msg, _Request(items=items), out)
        return True

    def _send_transfer(self, rnd: _Round, out: Output) -> bool:
        budget = self._config.max_message_bytes
        for ns in list(rnd.transfers):
            work = rnd.transfers[ns]
            msg: Message = {"t": "ae.xfer", "r": rnd.id, "q": rnd.next_request, "ns": ns}
            size = encoded_size(msg) + 2 * _RESULT_SLACK
            wants: list[str] = []
            while work.wants and (not wants or size + encoded_size(work.wants[0]) <= budget // 2):
                key = work.wants.popleft()
                wants.append(key)
                size += encoded_size(key)
            states: list[list[Any]] = []
            while work.ready or self._refill(ns, work):
                key, state = work.ready[0]
                grown = encoded_size([key, state])
                if size + grown > budget and (states or wants):
                    break
                work.ready.popleft()
                states.append([key, state])
                size += grown
            if not wants and not states:
                del rnd.transfers[ns]
                continue
            msg["s"], msg["w"] = states, wants
            self._send(
                rnd, msg, _Request(transfer=True, ns=ns, wants=wants, pushed=len(states)), out
            )
            return True
        return False

    def _refill(self, ns: str, work: _Transfer) -> bool:
        """Read the next batch of states to push; False when there is nothing left."""
        batch = self._config.state_batch_keys
        while not work.ready and (work.push_keys or work.push_ranges):
            if work.push_keys:
                keys = [work.push_keys.popleft() for _ in range(min(batch, len(work.push_keys)))]
            else:
                first, last = work.push_ranges.popleft()
                tree = self._source.tree(ns)
                if tree is None:
                    continue
                stop = tree.split_leaves(first, last, batch)
                if stop < last:
                    work.push_ranges.appendleft((stop + 1, last))
                keys = [key for key, _ in self._source.entries_in_leaves(ns, first, stop)]
            work.ready.extend(self._source.states(ns, keys) if keys else [])
        return bool(work.ready)

    def _send(self, rnd: _Round, msg: Message, request: _Request, out: Output) -> None:
        rnd.inflight[rnd.next_request] = request
        rnd.next_request += 1
        rnd.messages += 1
        if request.transfer:
            rnd.state_bytes += encoded_size(msg)
        else:
            rnd.digest_bytes += encoded_size(msg)
        out.send.append((rnd.peer, msg))

    def _finish(self, now: float, rnd: _Round, ok: bool, reason: str, out: Output) -> None:
        del self._rounds[rnd.id]
        out.events.append(
            RoundFinished(
                rnd.id,
                rnd.peer,
                ok,
                rnd.keys_sent,
                rnd.keys_received,
                rnd.digest_bytes,
                rnd.state_bytes,
                now - rnd.started,
                rnd.messages,
                reason,
            )
        )

    # Shared.

    def _item_to_wire(self, item: _Item) -> list[Any]:
        tree = self._source.tree(item.ns)
        self._check_shape(tree)
        node_hash, count = tree.node(item.level, item.index) if tree else (EMPTY_HASH, 0)
        return [item.ns, item.level, item.index, node_hash, count, item.after]

    def _wire_item(self, raw: Any, roots: bool) -> _WireItem:
        fields = _check_list(raw, "item", 6)
        ns = _check_str(fields[0], "namespace")
        level, index = _check_uint(fields[1], "level"), _check_uint(fields[2], "index")
        if roots and (level, index) != (0, 0):
            raise DecodeError("a roots item that is not a root")
        if level > self._config.tree_depth or index >= self._config.tree_fanout**level:
            raise DecodeError(f"no node ({level}, {index}) in this tree shape")
        node_hash = _check_bytes(fields[3], "hash", HASH_BYTES)
        count = _check_uint(fields[4], "count")
        after = None if fields[5] is None else _check_str(fields[5], "cursor")
        return _WireItem(ns, level, index, node_hash, count, after)

    def _leaf_range(self, level: int, index: int) -> tuple[int, int]:
        return leaf_range(level, index, self._config.tree_fanout, self._config.tree_depth)

    def _check_shape(self, tree: MerkleTree | None) -> None:
        if tree is not None and (tree.fanout, tree.depth) != (
            self._config.tree_fanout,
            self._config.tree_depth,
        ):
            raise ValueError(f"{tree!r} does not have the configured shape")


_DEFER = object()
"""A result that does not fit in what is left of the answer: cover it in a later one."""


@dataclass
class _Children:
    hashes: bytes
    counts: list[int]


@dataclass
class _Listing:
    entries: list[tuple[str, bytes]]
    more: bool
    last: tuple[int, bytes] | None


def _uint(msg: Message, name: str) -> int:
    return _check_uint(msg.get(name), name)


def _bool(msg: Message, name: str) -> bool:
    value = msg.get(name)
    if type(value) is not bool:
        raise DecodeError(f"{name} is not a bool")
    return value


def _str(msg: Message, name: str) -> str:
    return _check_str(msg.get(name), name)


def _list(msg: Message, name: str, max_len: int) -> Sequence[Any]:
    return _check_list(msg.get(name), name, max_len=max_len)


def _check_uint(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < _MAX_UINT:
        raise DecodeError(f"{what} is not an unsigned integer")
    return value


def _check_str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError(f"{what} is not valid UTF-8") from exc
    return value


def _check_bytes(value: Any, what: str, size: int) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise DecodeError(f"{what} is not {size} bytes")
    return value


def _check_list(
    value: Any, what: str, length: int | None = None, max_len: int = _MAX_ITEMS
) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise DecodeError(f"{what} is not an array")
    if (length is not None and len(value) != length) or len(value) > max_len:
        raise DecodeError(f"{what} has {len(value)} elements")
    return value


def _states(raw: Sequence[Any]) -> list[tuple[str, bytes]]:
    states = []
    for pair in raw:
        key, state = _check_list(pair, "state", 2)
        if type(state) is not bytes:
            raise DecodeError("a state is not bytes")
        states.append((_check_str(key, "key"), state))
    return states
