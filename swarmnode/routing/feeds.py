"""Watch feeds: a peer's subscription to what this node commits to some partitions.

A node whose client watches a sharded namespace takes each partition it does
not hold from one owner (`relay.py`). This is the owner's side, three
forwarded requests (`wire.py`):

- `wsub` opens a feed: a watch stream of one namespace restricted to the
  partitions asked for that this node holds complete, bounded in bytes like
  a client's (`api.watch_buffer_bytes`). Partitions it does not hold are
  answered `n`, for the subscriber to take elsewhere.
- `wpoll` long-polls it. A poll names the last event the subscriber has (its
  sequence number in the feed); the feed forgets what that acknowledges and
  answers what is left, or waits up to `hold` seconds for more. An answer the
  network loses is thus sent again by the next poll: within a feed nothing
  is lost or repeated, and events keep this node's commit order.
- `wstop` closes it (the client went).

A feed is closed when it is not polled for `lease` seconds (its subscriber
died or was cut off) or when its queue overflows (the subscriber fell too far
behind); a poll of a feed this node does not have (closed, or opened before
this node restarted) is answered `gone`, and the subscriber opens a new one
and tells its client of the gap. Partitions this node stops holding complete
(placement moved them) leave the feed and are named in every later answer
(`n`). At most `MAX_FEEDS` feeds are open at once; more are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from swarmnode.crdt.codec import packb
from swarmnode.errors import BadRequest, TooLarge
from swarmnode.service.ops.watch import Stream, WatchOps

FEED_KINDS = frozenset({"wsub", "wpoll", "wstop"})
MAX_FEEDS = 1024
"""Feeds open at once on one node (each bounded by `api.watch_buffer_bytes`)."""
ANSWER_BYTES = 256 << 10
"""Encoded events one poll answer carries at most (at least one, however large)."""


@dataclass
class _Feed:
    ns: str
    stream: Stream
    expires: float
    seq: int = 0
    sent: list[tuple[int, bytes]] = field(default_factory=list)
    """Events answered but not yet acknowledged: [sequence, encoded event]."""
    moved: set[int] = field(default_factory=set)
    poll: int = 0
    """The newest poll's number: an older poll still waiting answers nothing."""


class WatchFeeds:
    """The feeds peers opened here (see the module docstring)."""

    def __init__(self, watch: WatchOps, hold: float, lease: float) -> None:
        self.watch = watch
        self.host = watch.node.host
        self.hold = hold
        self.lease = lease
        self._feeds: dict[str, _Feed] = {}
        self._prefix = f"{self.host.node.node_id}.{self.host.clock.wall_ms():x}"
        self._next = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0
        self.expired = 0
        self.overflowed = 0

    def stats(self) -> dict[str, int]:
        return {
            "watch_feeds": len(self._feeds),
            "watch_feeds_opened": self.opened,
            "watch_feeds_expired": self.expired,
            "watch_feeds_overflowed": self.overflowed,
        }

    async def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one feed request (`body["k"]` is in FEED_KINDS)."""
        self._sweep()
        kind = body["k"]
        if kind == "wsub":
            return self._open(body)
        feed_id = body.get("s")
        if not isinstance(feed_id, str):
            raise BadRequest(f"{kind} names a feed (s)")
        if kind == "wstop":
            return {"r": self._close(feed_id)}
        acked = body.get("a")
        if type(acked) is not int:
            raise BadRequest("wpoll names the last event it has (a)")
        return {"r": await self._poll(feed_id, acked)}

    def _open(self, body: dict[str, Any]) -> dict[str, Any]:
        ns, prefix, parts = body.get("ns"), body.get("x"), body.get("p")
        if not isinstance(ns, str) or not isinstance(prefix, str) or not isinstance(parts, list):
            raise BadRequest("wsub names ns, a prefix (x) and partitions (p)")
        pmap = self.host.node.placement.map
        sharding = pmap.sharding(ns)
        if sharding is None:
            return {"n": sorted({p for p in parts if isinstance(p, int)})}
        wanted = {p for p in parts if isinstance(p, int) and 0 <= p < sharding.partitions}
        held = {p for p in wanted if pmap.ready(ns, p)}
        answer: dict[str, Any] = {}
        if wanted - held:
            answer["n"] = sorted(wanted - held)
        if not held:
            return answer
        if len(self._feeds) >= MAX_FEEDS:
            raise TooLarge(f"this node already feeds {MAX_FEEDS} remote watches")
        stream = self.watch.open(ns, prefix, bool(body.get("v")))
        stream.shards[ns] = held
        feed_id = f"{self._prefix}.{self._next}"
        self._next += 1
        self._feeds[feed_id] = _Feed(ns, stream, self._now() + self.lease)
        self.opened += 1
        self._arm()
        answer["r"] = {"s": feed_id}
        return answer

    async def _poll(self, feed_id: str, acked: int) -> dict[str, Any]:
        feed = self._feeds.get(feed_id)
        if feed is None:
            return {"gone": "unknown"}
        stream = feed.stream
        if stream.overflowed:
            self._close(feed_id)
            self.overflowed += 1
            return {"gone": "overflow"}
        feed.expires = self._now() + self.lease
        feed.sent = [(seq, raw) for seq, raw in feed.sent if seq > acked]
        self._leave_moved(feed)
        feed.poll += 1
        mine = feed.poll
        if not feed.sent and not stream.queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.wait(), self.hold)
            if feed.poll != mine or self._feeds.get(feed_id) is not feed:
                return {"ev": [], "n": sorted(feed.moved)}
            if stream.overflowed:
                self._close(feed_id)
                self.overflowed += 1
                return {"gone": "overflow"}
        size = sum(len(raw) for _, raw in feed.sent)
        while stream.queue and (size < ANSWER_BYTES or not feed.sent):
            item = stream.take()
            if not isinstance(item, dict):
                item = await self.watch.event(item, stream.with_values)
            raw = packb(item)
            feed.seq += 1
            feed.sent.append((feed.seq, raw))
            size += len(raw)
        return {"ev": [list(e) for e in feed.sent], "n": sorted(feed.moved)}

    def _leave_moved(self, feed: _Feed) -> None:
        """Partitions this node no longer holds complete leave the feed."""
        pmap = self.host.node.placement.map
        held = feed.stream.shards.get(feed.ns, set())
        if pmap.sharding(feed.ns) is None:
            gone = set(held)
        else:
            gone = {p for p in held if not pmap.ready(feed.ns, p)}
        held -= gone
        feed.moved |= gone

    def _close(self, feed_id: str) -> bool:
        """Close a feed; a poll it holds is answered at once (with nothing)."""
        feed = self._feeds.pop(feed_id, None)
        if feed is None:
            return False
        self.watch.forget(feed.stream)
        feed.poll += 1
        feed.stream.wake()
        return True

    def _now(self) -> float:
        return self.host.loop.time()

    def _sweep(self) -> None:
        now = self._now()
        for feed_id in [i for i, f in self._feeds.items() if f.expires <= now]:
            self._close(feed_id)
            self.expired += 1

    def _arm(self) -> None:
        """Sweep expired feeds even when no request arrives (every subscriber is gone)."""
        if self._sweeper is None and self._feeds:
            self._sweeper = self.host.loop.call_later(self.lease, self._swept)

    def _swept(self) -> None:
        self._sweeper = None
        self._sweep()
        self._arm()
