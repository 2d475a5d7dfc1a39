"""The node's part in placement: its view, what it waits for, what it hands over.

`PlacementKeeper` belongs to one `Node` and, like the node, owns no socket,
thread or clock. It keeps

- the settled view (`ViewTracker`), fed by membership, persisted with the
  data (`SetMeta`) so a restarted node knows what it owned;
- the owners of every partition of every sharded namespace and the
  partitions this node waits for (`PartitionMap`);
- the handoff protocol (`Handoff`): once a second it looks for partitions
  this node holds but does not own (it lost them to a newcomer, or took
  hints for them) and hands them to their owners, at most
  `handoff_concurrency` at a time, dropping only what the owners confirmed;
  and for partitions it waits for, it asks their former owners first, then
  their other owners, one at a time, for the data.

The node asks it which peers a sharded delta goes to, which partitions anti-
entropy compares with a peer, and which partitions are ready to be read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from swarmnode.crdt.codec import decode_entry
from swarmnode.errors import DecodeError
from swarmnode.placement.handoff import (
    ApplyHandoff,
    DropConfirmed,
    FillRefused,
    FillRequested,
    Handoff,
    PartitionFilled,
    SessionFinished,
)
from swarmnode.placement.hashing import partition_leaves
from swarmnode.placement.partitions import PartitionMap
from swarmnode.placement.plan import Move, Sharding
from swarmnode.placement.view import View, ViewTracker
from swarmnode.replication.merkle import MerkleTree, leaf_bits
from swarmnode.sansio import Address, Message, Output
from swarmnode.storage.ops import DropKeys, Merge, OpResult, SetMeta

if TYPE_CHECKING:
    from swarmnode.node import Node

log = logging.getLogger("swarmnode.placement")

VIEW_META = "placement_view"
SCAN_INTERVAL = 1.0
"""Seconds between two looks for partitions to hand over or to ask for."""


def encode_view(view: View) -> bytes:
    return "\n".join(view).encode()


def decode_view(raw: bytes | None) -> View | None:
    if not raw:
        return None
    return tuple(sorted(raw.decode().split("\n")))


class _Fill:
    """A partition this node waits for, and whom it asks, one at a time."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.asked: str | None = None
        self.refused: set[str] = set()
        self.retry_at = 0.0


class PlacementKeeper:
    def __init__(self, node: Node, now: float) -> None:
        self.node = node
        self.config = node.config.placement
        ae = node.config.antientropy
        self.leaf_bits = leaf_bits(ae.tree_fanout, ae.tree_depth)
        previous = decode_view(node.store.node_meta(VIEW_META))
        self.tracker = ViewTracker(node.node_id, self.config, now, previous)
        self.map = PartitionMap(node.node_id, ae.tree_fanout, ae.tree_depth, view=previous)
        self.map.set_namespaces(now, self._definitions(), fill=False)
        self.handoff = Handoff(self, self.config, node.rng, now)
        self._fills: dict[tuple[str, int], _Fill] = {}
        self._moving_to: dict[tuple[str, int], tuple[str, ...]] = {}
        """Partitions this node lost in a view change -> the owners that gained them."""
        self._complete: set[tuple[str, int]] = set()
        """Partitions handed here completely (and not handed away since): a view change that
        makes this node their owner finds them here already."""
        self._next_scan = now
        self._next_progress = now
        self._declare_metrics()

    # --- what the node reads ---------------------------------------------------------

    def sharding(self, ns: str) -> Sharding | None:
        return self.map.sharding(ns)

    def group(self, ns: str, key: str, exclude: Address | None = None) -> tuple[Address, ...]:
        """The peers a delta of (ns, key) goes to: the partition's other live owners."""
        owners = self.map.owners(ns, self.map.partition_of(ns, key))
        out = []
        membership = self.node.membership
        for node_id in owners:
            if node_id == self.node.node_id:
                continue
            member = membership.member(node_id)
            if member is not None and member.state.live and member.addr != exclude:
                out.append(member.addr)
        return tuple(sorted(out))

    def partition_count(self, ns: str, partition: int, tree: MerkleTree | None = None) -> int:
        """Entries (tombstones included) this node stores in a partition."""
        tree = tree if tree is not None else self.node.trees.get(ns)
        if tree is None:
            return 0
        return sum(tree.node(level, index)[1] for level, index in self.map.nodes(ns, partition))

    def live_address(self, node_id: str) -> Address | None:
        member = self.node.membership.member(node_id)
        if member is None or not member.state.live:
            return None
        return member.addr

    # --- anti-entropy's view (PartitionSource) ------------------------------------------

    def partition_items(self, peer: Address) -> list[tuple[str, int, int]]:
        peer_id = next((i for i, a in self.node.membership.live_peers() if a == peer), None)
        if peer_id is None or self.map.view is None:
            return []
        items = []
        for ns in self.map.namespaces:
            shared = {
                p
                for p in self.map.owned(ns)
                if self.map.ready(ns, p) and peer_id in self.map.owners(ns, p)
            }
            items.extend((ns, lv, i) for lv, i in self.map.covering_nodes(ns, shared))
        return items

    def declines(self, ns: str, level: int, index: int) -> bool:
        if self.map.sharding(ns) is None:
            return False
        return not all(self.map.ready(ns, p) for p in self.map.partitions_under(ns, level, index))

    # --- the handoff's view of the store (HandoffSource) ---------------------------------

    def tree(self, ns: str) -> MerkleTree | None:
        return self.node.trees.get(ns)

    def entries_in_leaves(self, ns: str, first: int, last: int) -> list[tuple[str, bytes]]:
        return self.node.store.leaf_entries(ns, first, last)

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        return self.node.store.states(ns, keys)

    # --- steps ------------------------------------------------------------------------------

    def observe(self, now: float) -> None:
        """Membership changed: the candidate view follows it."""
        self.tracker.observe(now, self.node.membership.members())

    def definitions_changed(self, now: float) -> None:
        moves = self.map.set_namespaces(now, self._definitions())
        self._moved(now, moves)

    def next_deadline(self) -> float | None:
        due = [self._next_scan]
        for d in (self.tracker.next_deadline(), self.handoff.next_deadline()):
            if d is not None:
                due.append(d)
        return min(due)

    def tick(self, now: float) -> None:
        if self.tracker.needs_observe(now):
            self.observe(now)
        view = self.tracker.tick(now)
        if view is not None:
            self._settled(now, view)
        self._run(self.handoff.tick(now))
        if now >= self._next_scan:
            self._next_scan = now + SCAN_INTERVAL
            if self.map.namespaces and self.map.view is not None:
                self._ask_for_fills(now)
                self._hand_over(now)
        if self.handoff.active and now >= self._next_progress:
            self._next_progress = now + self.config.progress_interval
            for p in self.handoff.progress(now):
                log.info(
                    "event=handoff_progress ns=%s partition=%d kind=%s to=%s keys=%d/%d "
                    "pushed=%d bytes=%d seconds=%.1f",
                    p["ns"],
                    p["partition"],
                    p["kind"],
                    ",".join(p["to"]),
                    p["keys_offered"],
                    p["keys_total"],
                    p["keys_pushed"],
                    p["bytes_sent"],
                    p["seconds"],
                )

    def receive(self, now: float, sender: Address, msg: Message) -> None:
        self._run(self.handoff.receive(now, sender, msg))

    # --- the view ------------------------------------------------------------------------

    def _definitions(self) -> dict[str, Sharding]:
        return {
            name: Sharding(d.partitions, d.replicas)
            for name, d in self.node.store.catalog.definitions.items()
            if d.sharded
        }

    def _settled(self, now: float, view: View) -> None:
        before = self.map.view
        moves = self.map.set_view(now, view)
        self.node.write(SetMeta(VIEW_META, encode_view(view)), _ignore)
        self._view_changes.inc()
        gained = sum(1 for m in moves if self.node.node_id in m.gained)
        lost = sum(1 for m in moves if self.node.node_id in m.lost)
        log.info(
            "event=placement_view members=%d was=%d moves=%d gained=%d lost=%d",
            len(view),
            len(before) if before is not None else 0,
            len(moves),
            gained,
            lost,
        )
        self._moved(now, moves)

    def _moved(self, now: float, moves: list[Move]) -> None:
        me = self.node.node_id
        for move in moves:
            key = (move.ns, move.partition)
            if key in self.map.filling and key in self._complete:
                self._mark_filled(key, "handed over before the view settled")
            if me in move.lost:
                self._moving_to[key] = move.gained
            elif me in move.after:
                self._moving_to.pop(key, None)
            if key in self.map.filling:
                # Former owners first: they hand the partition over anyway.
                former = [m for m in move.before if m not in move.after and m != me]
                rest = [m for m in self.map.fill_sources(*key) if m not in former]
                self._fills[key] = _Fill(former + rest)
            else:
                self._fills.pop(key, None)
        self._next_scan = min(self._next_scan, now)

    # --- partitions this node waits for ------------------------------------------------------

    def _ask_for_fills(self, now: float) -> None:
        for key in list(self.map.filling):
            fill = self._fills.get(key)
            if fill is None:
                fill = self._fills[key] = _Fill(self.map.fill_sources(*key))
            if now < fill.retry_at:
                continue
            candidates = [s for s in fill.sources if s not in fill.refused]
            if not candidates:
                self._mark_filled(key, "nobody holds it")
                continue
            live = [s for s in candidates if self.live_address(s) is not None]
            if not live:
                continue  # its holders are down: keep waiting (reads go elsewhere meanwhile)
            start = live.index(fill.asked) + 1 if fill.asked in live else 0
            fill.asked = live[start % len(live)]
            fill.retry_at = now + self.config.fill_wait
            addr = self.live_address(fill.asked)
            assert addr is not None
            self.node.emit(self.handoff.request_fill(addr, *key))

    def _mark_filled(self, key: tuple[str, int], why: str) -> None:
        if self.map.filled(*key):
            self._fills.pop(key, None)
            log.info("event=partition_ready ns=%s partition=%d why=%s", key[0], key[1], why)

    # --- partitions this node hands over -------------------------------------------------------

    def _hand_over(self, now: float) -> None:
        for ns, sharding in self.map.namespaces.items():
            tree = self.node.trees.get(ns)
            if tree is None or not tree.count():
                continue
            for p in range(sharding.partitions):
                if not self.handoff.has_room():
                    return
                if self.map.owns(ns, p) or self.handoff.sending(ns, p):
                    continue
                if self.partition_count(ns, p, tree):
                    self._start_move(now, ns, p)

    def _move_targets(self, ns: str, partition: int) -> list[Address]:
        """Who receives a partition this node hands over: the owners that gained it when
        this node lost it (one copy on an owner is enough: anti-entropy makes it R), else
        every live owner (hints)."""
        gained = [self.live_address(m) for m in self._moving_to.get((ns, partition), ())]
        targets = [a for a in gained if a is not None]
        if not targets:
            owners = self.map.owners(ns, partition)
            targets = [a for a in map(self.live_address, owners) if a is not None]
        return sorted(targets)

    def _start_move(self, now: float, ns: str, partition: int) -> bool:
        targets = self._move_targets(ns, partition)
        if not targets:
            return False
        leaves = partition_leaves(partition, self.map.namespaces[ns].partitions, self.leaf_bits)
        self._run(self.handoff.start(now, ns, partition, leaves, targets, copy=False))
        return True

    def _start_copy(self, now: float, ns: str, partition: int, to: Address) -> None:
        leaves = partition_leaves(partition, self.map.namespaces[ns].partitions, self.leaf_bits)
        self._run(self.handoff.start(now, ns, partition, leaves, [to], copy=True))

    # --- events of the handoff protocol ------------------------------------------------------

    def _run(self, out: Output) -> None:
        if out.send:
            self.node.emit(Output(send=out.send))
        for ev in out.events:
            if isinstance(ev, ApplyHandoff):
                self._apply(ev)
            elif isinstance(ev, DropConfirmed):
                self._drop(ev)
            elif isinstance(ev, PartitionFilled):
                if self.map.sharding(ev.ns) is not None:
                    self._complete.add((ev.ns, ev.partition))
                    self._mark_filled((ev.ns, ev.partition), "handed over")
            elif isinstance(ev, FillRequested):
                self._fill_requested(ev)
            elif isinstance(ev, FillRefused):
                fill = self._fills.get((ev.ns, ev.partition))
                peer = self._node_id_at(ev.peer)
                if fill is not None and peer is not None:
                    fill.refused.add(peer)
                    fill.retry_at = 0.0
                    self._next_scan = min(self._next_scan, self.node.now)
            elif isinstance(ev, SessionFinished):
                self._finished(ev)

    def _node_id_at(self, addr: Address) -> str | None:
        return next((i for i, a in self.node.membership.live_peers() if a == addr), None)

    def _fill_requested(self, ev: FillRequested) -> None:
        now = self.node.now
        key = (ev.ns, ev.partition)
        sharding = self.map.sharding(ev.ns)
        refuse = True
        if sharding is not None and 0 <= ev.partition < sharding.partitions:
            if self.handoff.sending(*key):
                refuse = False  # a session is under way; its `done` answers
            elif self.map.ready(*key) and not self.partition_count(*key):
                # Complete here and empty: so it is at the asker, said at once. A copy
                # session per empty partition, `handoff_concurrency` at a time, kept the
                # owners of a new namespace filling for minutes.
                self.node.emit(self.handoff.nothing_to_fill(ev.peer, ev.ns, ev.partition))
                return
            elif self.map.ready(*key):
                if self.handoff.has_room():
                    self._start_copy(now, ev.ns, ev.partition, ev.peer)
                refuse = False  # no room now: the asker asks again after fill_wait
            elif not self.map.owns(*key) and self.partition_count(*key):
                self._start_move(now, ev.ns, ev.partition)
                refuse = False
        if refuse:
            self.node.emit(self.handoff.refuse_fill(ev.peer, ev.ns, ev.partition))

    def _apply(self, ev: ApplyHandoff) -> None:
        """Join handed-over states; acknowledge once every one of them is committed."""
        pending = [len(ev.states)]
        failed = [False]

        def done(result: OpResult) -> None:
            if result.error is not None:
                failed[0] = True
                self.node.count_merge_error(result)
            elif result.value and result.value.get("applied"):
                self._keys.labels("received").inc()
            pending[0] -= 1
            if pending[0] == 0 and not failed[0]:
                self.node.emit(self.handoff.applied(ev.peer, ev.session, ev.push))

        if not ev.states:
            self.node.emit(self.handoff.applied(ev.peer, ev.session, ev.push))
            return
        for key, raw in ev.states:
            try:
                state = decode_entry(raw)
            except DecodeError:
                self.node.count_drop("bad_state")
                failed[0] = True
                pending[0] -= 1
                continue
            self.node.write(Merge(ev.ns, key, state, full=True, origin="handoff"), done)

    def _drop(self, ev: DropConfirmed) -> None:
        if self.map.sharding(ev.ns) is not None and self.map.owns(ev.ns, ev.partition):
            return  # owned again meanwhile: keep it

        def dropped(result: OpResult) -> None:
            if result.error is not None:
                log.error("event=handoff_drop_failed ns=%s error=%s", ev.ns, result.error.message)
            else:
                self._keys.labels("dropped").inc(len(result.changes))

        self.node.write(DropKeys(ev.ns, ev.items), dropped)

    def _finished(self, ev: SessionFinished) -> None:
        self._sessions.labels("ok" if ev.ok else "failed").inc()
        self._keys.labels("pushed").inc(ev.keys_pushed)
        log.info(
            "event=handoff_%s ns=%s partition=%d kind=%s to=%s keys=%d pushed=%d bytes=%d "
            "seconds=%.2f%s",
            "done" if ev.ok else "failed",
            ev.ns,
            ev.partition,
            "copy" if ev.copy else "move",
            ",".join(f"{a[0]}:{a[1]}" for a in ev.targets),
            ev.keys_offered,
            ev.keys_pushed,
            ev.bytes_sent,
            ev.duration,
            f" reason={ev.reason}" if ev.reason else "",
        )
        if ev.ok and not ev.copy:
            self._moving_to.pop((ev.ns, ev.partition), None)
            self._complete.discard((ev.ns, ev.partition))

    # --- status and metrics ---------------------------------------------------------------

    def _declare_metrics(self) -> None:
        m = self.node.metrics
        self._view_changes = m.counter(
            "swarmnode_placement_view_changes_total",
            "Settled member lists placement followed (each may move partitions).",
            stats=("placement", "view_changes"),
        )
        self._sessions = m.counter(
            "swarmnode_placement_handoffs_total",
            "Partition handoffs this node sent (moves and copies), by result.",
            labels=("result",),
            stats=("placement", "handoffs_{result}"),
        )
        self._keys = m.counter(
            "swarmnode_placement_handoff_keys_total",
            "Entries moved by handoffs: pushed to owners, received here (new to this node), "
            "dropped here once the owners confirmed them.",
            labels=("direction",),
            stats=("placement", "keys_{direction}"),
        )
        m.counter(
            "swarmnode_placement_handoff_sent_bytes_total",
            "Bytes of handoff messages (offers, states, confirmations) this node sent.",
            fn=lambda: self.handoff.bytes_sent,
            stats=("placement", "handoff_bytes_sent"),
        )
        m.gauge(
            "swarmnode_placement_partitions_filling",
            "Partitions this node owns and still waits for.",
            fn=lambda: len(self.map.filling),
            stats=("placement", "filling"),
        )
        m.gauge(
            "swarmnode_placement_handoffs_active",
            "Partition handoffs this node is sending now.",
            fn=lambda: self.handoff.active,
            stats=("placement", "handoffs_active"),
        )

    def status(self, now: float) -> dict[str, Any]:
        """Partitions per member and moves in flight, for `stats`, `status` and `members`."""
        view = self.map.view
        namespaces = {}
        per_member: dict[str, int] = {}
        for ns, sharding in self.map.namespaces.items():
            owned = self.map.owned(ns)
            tree = self.node.trees.get(ns)
            holding = [p for p in range(sharding.partitions) if self.partition_count(ns, p, tree)]
            namespaces[ns] = {
                "partitions": sharding.partitions,
                "replicas": sharding.replicas if sharding.replicas is not None else "all",
                "owned": len(owned),
                "filling": sum(1 for k in self.map.filling if k[0] == ns),
                "held_not_owned": sum(1 for p in holding if p not in set(owned)),
            }
            for p in range(sharding.partitions):
                for member in self.map.owners(ns, p):
                    per_member[member] = per_member.get(member, 0) + 1
        return {
            "view": list(view) if view is not None else None,
            "settled": view is not None and self.tracker.candidate == view,
            "namespaces": namespaces,
            "partitions_per_member": per_member,
            "moves": self.handoff.progress(now),
        }

    def member_partitions(self) -> dict[str, int]:
        """Partitions each member owns, over every sharded namespace (this node's view)."""
        counts: dict[str, int] = {}
        for ns, sharding in self.map.namespaces.items():
            for p in range(sharding.partitions):
                for member in self.map.owners(ns, p):
                    counts[member] = counts.get(member, 0) + 1
        return counts


def _ignore(result: OpResult) -> None:
    if result.error is not None:
        log.error("event=placement_meta_failed error=%s", result.error.message)
