"""A client's watch of sharded namespaces: every partition's changes, wherever committed.

A sharded namespace's changes are committed on each partition's owners, so a
watch on one node relays those of the partitions it does not hold. For each
watched sharded namespace the relay keeps a source per partition: this node
when it holds the partition complete, otherwise one live owner (a covering
set, `placement.coverage.recover`: the fewest owners, nearest first), where
it opens a feed (`feeds.py`) and long-polls it, pushing the events into the
client's stream, whose byte bound and overflow apply to them as to local
changes.

A source keeps its partitions while it can serve them. When it cannot (its
owner died or stopped answering, placement moved the partition, the owner
dropped the feed because this node fell behind or restarted), the relay
takes the partitions from another owner and then tells the client with a
`gap` notice naming them: changes to those partitions committed between the
old source's last event and the new source's subscription may be missing,
so the client should read them again (a `list` of the namespace) after the
notice. Partitions no owner can serve are named `uncovered` at once and
named again in a `gap` notice once they are served. The guarantee: every
change committed on a partition's source while it is the source reaches the
client once, in that node's commit order; a change of source is always
announced. Changes can arrive twice around a change of source (the old and
the new one both had them). A watch of every namespace also takes sharded
namespaces created after it started (with a gap notice, since their first
changes may have come before), and forgets those deleted.

The relay re-examines its sources at once when a feed fails, and otherwise
every `recheck` seconds if what they depend on changed (placement, liveness,
the watched namespaces) or a partition still has none; its feeds are stopped
when the client's stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmnode.crdt.codec import unpackb
from swarmnode.errors import SwarmError, Unavailable
from swarmnode.placement.coverage import recover
from swarmnode.routing.rpc import TIMED_OUT
from swarmnode.routing.wire import not_ready, result_of
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.ops.watch import Stream
from swarmnode.service.table import Request
from swarmnode.storage.namespaces import reserved

log = logging.getLogger("swarmnode.routing")

MISSES = 3
"""Polls in a row without an answer after which a still-live owner counts as lost."""
GAP_OVERHEAD = 64


@dataclass(eq=False)
class _Feed:
    """A feed this relay reads: partitions of one namespace from one owner."""

    node: str
    addr: Any
    ns: str
    parts: set[int]
    feed_id: str
    task: asyncio.Task[None] | None = None


@dataclass
class _Watched:
    """One sharded namespace of a watch: each partition's source (None: nobody)."""

    sources: dict[int, str | None]
    reasons: dict[int, str] = field(default_factory=dict)
    """Why a partition lost its source, until it has a new one."""
    uncovered: set[int] = field(default_factory=set)
    """Partitions already announced as uncovered."""


class Relays:
    """The node's relay factory (`WatchOps.relays`) and what outlives a relay."""

    def __init__(self, services: NodeServices, request_timeout: float, recheck: float) -> None:
        self.services = services
        self.request_timeout = request_timeout
        self.recheck = recheck
        self.hold = request_timeout / 2
        self._stopping: set[asyncio.Task[Any]] = set()
        self.open: set[Relay] = set()
        self.gaps = 0
        self.lost = 0

    def stats(self) -> dict[str, Any]:
        """Counters, and how many partitions each owner feeds this node's watches now."""
        sources: dict[str, int] = {}
        for relay in self.open:
            for feed in relay.feeds:
                sources[feed.node] = sources.get(feed.node, 0) + len(feed.parts)
        return {
            "watch_relays": len(self.open),
            "watch_relay_gaps": self.gaps,
            "watch_relay_feeds_lost": self.lost,
            "watch_relay_sources": dict(sorted(sources.items())),
        }

    def __call__(self, stream: Stream, req: Request) -> Relay | None:
        ns = stream.ns
        if (
            ns is not None
            and self.services.host.node.placement.sharding(ns) is None
            and ns in self.services.store.catalog.definitions
        ):
            return None  # held whole: every change is committed here
        return Relay(self, stream, req.notes.get("readable"))

    def stop_later(self, addr: Any, feed_id: str) -> None:
        """Tell an owner to close a feed, without making the closing client wait."""
        host = self.services.host
        body = {"k": "wstop", "s": feed_id}
        task = host.loop.create_task(host.call(addr, body, self.request_timeout))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)


class Relay:
    """The sources of one client's stream (see the module docstring)."""

    def __init__(
        self, relays: Relays, stream: Stream, readable: Callable[[str], bool] | None
    ) -> None:
        self.relays = relays
        self.host = relays.services.host
        self.stream = stream
        self.readable = readable
        self.watched: dict[str, _Watched] = {}
        self.feeds: list[_Feed] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        relays.open.add(self)

    @property
    def me(self) -> str:
        return self.host.node.node_id

    @property
    def pmap(self) -> Any:
        return self.host.node.placement.map

    async def start(self) -> None:
        """Take every partition from a source before the client's stream begins."""
        if self.pmap.view is None and self._namespaces():
            raise Unavailable(
                "watch: this node has not settled its view of the cluster yet (it just "
                "started), so it cannot tell who owns a sharded namespace; retry in a moment"
            )
        await self._recover(initial=True)
        self._task = self.host.loop.create_task(self._supervise())

    async def close(self) -> None:
        self._closed = True
        self.relays.open.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for feed in list(self.feeds):
            self._drop(feed)

    async def _supervise(self) -> None:
        last = self._situation()
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.relays.recheck)
            kicked = self._kick.is_set()
            self._kick.clear()
            now = self._situation()
            whole = all(s is not None for w in self.watched.values() for s in w.sources.values())
            if not kicked and now == last and whole:
                continue  # nothing the sources depend on changed, and none is missing
            last = now
            try:
                await self._recover(initial=False)
            except SwarmError as exc:
                log.info("event=watch_relay_recover_failed error=%s", exc.message)

    def _situation(self) -> tuple[Any, ...]:
        """What the sources depend on: the namespaces watched, placement, the partitions
        filling here, and who is live."""
        pmap = self.pmap
        live = sorted(node_id for node_id, _ in self.host.node.membership.live_peers())
        return (self._namespaces(), pmap.view, dict(pmap.namespaces), set(pmap.filling), live)

    # --- sources ----------------------------------------------------------------------

    def _namespaces(self) -> list[str]:
        sharded = self.pmap.namespaces
        if self.stream.ns is not None:
            return [self.stream.ns] if self.stream.ns in sharded else []
        return sorted(
            ns
            for ns in sharded
            if not reserved(ns) and (self.readable is None or self.readable(ns))
        )

    def _candidates(self, ns: str, partition: int) -> list[str]:
        """Who may feed a partition: this node if it holds it complete, then the other
        live owners, nearest first."""
        placement = self.host.node.placement
        rtt = self.host.node.calls.rtt
        out = [self.me] if self.pmap.ready(ns, partition) else []
        others = []
        for rank, node_id in enumerate(self.pmap.owners(ns, partition)):
            if node_id == self.me:
                continue
            addr = placement.live_address(node_id)
            if addr is not None:
                others.append((rtt.get(addr, float("inf")), rank, node_id))
        return out + [node_id for _, _, node_id in sorted(others)]

    async def _recover(self, initial: bool) -> None:
        if self.pmap.view is None:
            return
        namespaces = self._namespaces()
        for ns in [n for n in self.watched if n not in namespaces]:
            del self.watched[ns]
            self.stream.shards.pop(ns, None)
            for feed in [f for f in self.feeds if f.ns == ns]:
                self._drop(feed)
        for ns in namespaces:
            await self._recover_ns(ns, initial)

    async def _recover_ns(self, ns: str, initial: bool) -> None:
        sharding = self.pmap.sharding(ns)
        if sharding is None:
            return  # deleted while the namespaces before it were recovered
        partitions = sharding.partitions
        watched = self.watched.get(ns)
        if watched is None or len(watched.sources) != partitions:
            watched = _Watched({p: None for p in range(partitions)})
            if not initial:
                watched.reasons = {p: "new_namespace" for p in range(partitions)}
            self.watched[ns] = watched
            self.stream.shards[ns] = set()
        sources = watched.sources
        local = self.stream.shards.setdefault(ns, set())
        excluded: dict[int, set[str]] = {}
        changed: set[int] = set()
        for _attempt in range(3):
            candidates = {}
            for p in range(partitions):
                nodes = [n for n in self._candidates(ns, p) if n not in excluded.get(p, ())]
                candidates[p] = nodes
            plan, lost = recover(sources, candidates, local=self.me, load=self._load())
            for p in lost:
                self._unset(ns, watched, p, "owner_lost")
            if not plan:
                break
            for p in {p for parts in plan.values() for p in parts}:
                self._unset(ns, watched, p, self._why_lost(sources[p]))
            local.update(plan.pop(self.me, []))
            changed.update(p for p in range(partitions) if sources[p] is None and p in local)
            for p in local:
                sources[p] = self.me
            opened = await asyncio.gather(
                *(self._subscribe(ns, node, parts) for node, parts in plan.items())
            )
            if self._closed:  # the client went meanwhile: nobody will read these
                for feed, _ in opened:
                    if feed is not None:
                        self.relays.stop_later(feed.addr, feed.feed_id)
                return
            for node, (feed, refused) in zip(plan, opened, strict=True):
                for p in refused:
                    excluded.setdefault(p, set()).add(node)
                if feed is not None:
                    self.feeds.append(feed)
                    for p in feed.parts:
                        sources[p] = node
                        changed.add(p)
                    feed.task = self.host.loop.create_task(self._read(feed))
            if not any(p in excluded for p in range(partitions) if sources[p] is None):
                break
        self._prune_feeds(ns)
        self._announce(ns, watched, changed, initial)

    def _why_lost(self, source: str | None) -> str:
        if source is None or source == self.me:
            return "moved"
        alive = self.host.node.placement.live_address(source) is not None
        return "moved" if alive else "owner_lost"

    def _unset(self, ns: str, watched: _Watched, p: int, reason: str) -> None:
        """Partition p has no source any more (it will get another, or stay uncovered)."""
        if watched.sources[p] is None:
            return
        if watched.sources[p] == self.me:
            self.stream.shards.get(ns, set()).discard(p)
        watched.sources[p] = None
        watched.reasons.setdefault(p, reason)

    def _prune_feeds(self, ns: str) -> None:
        """A feed keeps only the partitions it is still the source of; empty ones stop."""
        sources = self.watched[ns].sources
        for feed in [f for f in self.feeds if f.ns == ns]:
            feed.parts = {p for p in feed.parts if sources.get(p) == feed.node}
            if not feed.parts:
                alive = self.host.node.placement.live_address(feed.node) is not None
                self._drop(feed, stop=alive)

    def _announce(self, ns: str, watched: _Watched, changed: set[int], initial: bool) -> None:
        """Tell the client which partitions resumed after a gap, and which have no source."""
        resumed: dict[str, list[int]] = {}
        for p in sorted(changed):
            reason = watched.reasons.pop(p, None)
            if reason is not None and not initial:
                resumed.setdefault(reason, []).append(p)
            watched.uncovered.discard(p)
        now_uncovered = {p for p, s in watched.sources.items() if s is None}
        fresh = sorted(now_uncovered - watched.uncovered)
        watched.uncovered = now_uncovered
        for p in fresh:
            watched.reasons.setdefault(p, "no_owner")
        for reason, parts in sorted(resumed.items()):
            self._notice(ns, reason, parts, [])
        if fresh:
            self._notice(ns, "no_owner", [], fresh)

    def _notice(self, ns: str, reason: str, resumed: list[int], uncovered: list[int]) -> None:
        self.relays.gaps += 1
        event = {
            "ns": ns,
            "key": "",
            "event": "gap",
            "origin": "relay",
            "seq": 0,
            "reason": reason,
            "partitions": resumed,
            "uncovered": uncovered,
        }
        log.info(
            "event=watch_gap ns=%s reason=%s resumed=%d uncovered=%d",
            ns,
            reason,
            len(resumed),
            len(uncovered),
        )
        self.stream.push(event, GAP_OVERHEAD + 8 * (len(resumed) + len(uncovered)))

    def _load(self) -> dict[str, int]:
        by_addr = self.host.node.calls.load()
        return {
            node_id: by_addr[addr]
            for node_id, addr in self.host.node.membership.live_peers()
            if addr in by_addr
        }

    # --- feeds ------------------------------------------------------------------------

    async def _subscribe(
        self, ns: str, node: str, parts: list[int]
    ) -> tuple[_Feed | None, list[int]]:
        """(the feed opened at `node`, partitions it would not feed)."""
        addr = self.host.node.placement.live_address(node)
        if addr is None:
            return None, parts
        body = {
            "k": "wsub",
            "ns": ns,
            "x": self.stream.prefix,
            "v": self.stream.with_values,
            "p": parts,
        }
        answer = await self.host.call(addr, body, self.relays.request_timeout)
        if answer is TIMED_OUT:
            return None, parts
        try:
            result = result_of(answer)
        except SwarmError as exc:
            log.info("event=watch_feed_refused node=%s ns=%s error=%s", node, ns, exc.message)
            return None, parts
        refused = not_ready(answer)
        if not isinstance(result, dict) or not isinstance(result.get("s"), str):
            return None, parts
        kept = set(parts) - set(refused)
        return _Feed(node, addr, ns, kept, result["s"]), refused

    async def _read(self, feed: _Feed) -> None:
        """Poll one feed until it fails or is stopped; its events go to the stream."""
        acked = 0
        misses = 0
        placement = self.host.node.placement
        while feed in self.feeds:
            body = {"k": "wpoll", "s": feed.feed_id, "a": acked}
            timeout = self.relays.request_timeout + self.relays.hold
            try:
                answer = await self.host.call(feed.addr, body, timeout)
            except SwarmError:
                return  # this node is shutting down
            if feed not in self.feeds:
                return
            if answer is TIMED_OUT:
                misses += 1
                if misses >= MISSES or placement.live_address(feed.node) is None:
                    self._fail(feed, "owner_lost")
                    return
                continue
            misses = 0
            try:
                result = result_of(answer)
            except SwarmError as exc:
                log.info("event=watch_feed_failed node=%s error=%s", feed.node, exc.message)
                self._fail(feed, "owner_lost")
                return
            if not isinstance(result, dict) or "gone" in result:
                gone = result.get("gone") if isinstance(result, dict) else None
                self._fail(feed, "overflow" if gone == "overflow" else "restarted")
                return
            acked = self._deliver(feed, result.get("ev") or [], acked)
            moved = [p for p in result.get("n") or [] if p in feed.parts]
            if moved:
                self._fail(feed, "moved", moved)

    def _deliver(self, feed: _Feed, events: list[Any], acked: int) -> int:
        """Push the events not delivered yet whose partition this feed is the source of;
        returns the last sequence number delivered."""
        watched = self.watched.get(feed.ns)
        pmap = self.pmap
        if watched is None or pmap.sharding(feed.ns) is None:
            return acked
        sources = watched.sources
        for item in events:
            if not isinstance(item, list | tuple) or len(item) != 2:
                continue
            seq, raw = item
            if type(seq) is not int or not isinstance(raw, bytes) or seq <= acked:
                continue
            acked = seq
            event = unpackb(raw)
            if sources.get(pmap.partition_of(feed.ns, event["key"])) == feed.node:
                self.stream.push(event, len(raw))
        return acked

    def _fail(self, feed: _Feed, reason: str, parts: list[int] | None = None) -> None:
        """The feed can no longer serve `parts` (all of them by default): give them up and
        have the supervisor find them another source."""
        watched = self.watched.get(feed.ns)
        lost = list(feed.parts) if parts is None else parts
        self.relays.lost += 1
        log.info(
            "event=watch_feed_lost node=%s ns=%s partitions=%d reason=%s",
            feed.node,
            feed.ns,
            len(lost),
            reason,
        )
        if watched is not None:
            for p in lost:
                if watched.sources.get(p) == feed.node:
                    self._unset(feed.ns, watched, p, reason)
        feed.parts -= set(lost)
        if not feed.parts:
            # Only a feed whose partitions moved still exists on its owner.
            self._drop(feed, stop=reason == "moved")
        self._kick.set()

    def _drop(self, feed: _Feed, stop: bool = True) -> None:
        if feed in self.feeds:
            self.feeds.remove(feed)
        if feed.task is not None and feed.task is not asyncio.current_task():
            feed.task.cancel()
        if stop:
            self.relays.stop_later(feed.addr, feed.feed_id)
