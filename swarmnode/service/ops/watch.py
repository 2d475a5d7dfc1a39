"""`watch`: committed changes streamed to clients, bounded in bytes per watcher.

One listener on the node's host fans each committed change out to every
watch stream whose filter it passes. Streams queue the change itself (shared
by all of them, never copied) and build the event only when they send it, so
a thousand watchers of one write hold one change. Each stream counts what it
holds unsent by the size of the records the changes wrote; past
`api.watch_buffer_bytes` (its client stopped reading, or reads too slowly)
it drops its queue and ends with a final `too_large`: re-subscribe and
re-read. A set's event shows the whole set, read once per change on a worker
thread and shared by every watcher, never on the event loop per watcher.

A sharded namespace's changes are committed on the owners of each partition,
so a stream passes the local changes of the partitions it is told to take
from here (`Stream.shards`) and no others (a filling partition's fill, a
handed-over partition's drop, are not changes a watcher should see). A
stream that watches any sharded namespace gets a relay (`routing/relay.py`)
that chooses those partitions, subscribes at an owner for the rest, and
pushes their events, and its gap notices, into the same bounded queue.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from swarmnode.crdt.entry import SET
from swarmnode.errors import TooLarge
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request
from swarmnode.storage.namespaces import reserved
from swarmnode.storage.ops import Change
from swarmnode.storage.views import entry_view

SET_VALUES_KEPT = 64
"""Whole-set reads kept for streams still behind: one per recent set change."""
CHANGE_OVERHEAD = 64
"""Bytes a queued change costs beyond its record (the Change object itself)."""


def event_name(ch: Change) -> str:
    if ch.visible_after:
        return "put" if ch.kind in ("put", "merge", "ns") else ch.kind
    if ch.kind in ("expire", "collect"):
        return "expire"
    if ch.kind == "archive":
        return "archive"
    return "delete"


class Stream:
    """What one watcher has waiting: local changes, and events built elsewhere (relayed
    from an owner, or a gap notice), in one queue bounded in bytes."""

    def __init__(self, ns: str | None, prefix: str, with_values: bool, limit: int) -> None:
        self.ns = ns
        self.prefix = prefix
        self.with_values = with_values
        self.limit = limit
        self.queue: deque[tuple[Change | dict[str, Any], int]] = deque()
        self.queued_bytes = 0
        self.overflowed = False
        self.wakeup: asyncio.Future[None] | None = None
        self.shards: dict[str, set[int]] = {}
        """For each sharded namespace, the partitions whose local changes this stream takes
        (a sharded namespace absent here: none)."""
        self.partitioned = True
        """Whether `shards` applies; a watch of a namespace held whole when it began has no
        relay and takes every local change, should the namespace be sharded later."""

    def offer(self, ch: Change, partition: int | None) -> None:
        """A committed change; `partition` is its partition when its namespace is sharded."""
        if self.overflowed or (self.ns is not None and ch.ns != self.ns):
            return
        if not ch.key.startswith(self.prefix):
            return
        if (
            partition is not None
            and self.partitioned
            and partition not in self.shards.get(ch.ns, ())
        ):
            return
        self._queue(ch, ch.size + CHANGE_OVERHEAD)

    def push(self, event: dict[str, Any], size: int) -> None:
        """An event built elsewhere, `size` bytes encoded."""
        if not self.overflowed:
            self._queue(event, size + CHANGE_OVERHEAD)

    def _queue(self, item: Change | dict[str, Any], cost: int) -> None:
        if self.queue and self.queued_bytes + cost > self.limit:
            self.overflowed = True
            self.queue.clear()
            self.queued_bytes = 0
        else:
            self.queue.append((item, cost))
            self.queued_bytes += cost
        self.wake()

    def wake(self) -> None:
        """Let whoever waits on this stream look at it again."""
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def take(self) -> Change | dict[str, Any]:
        item, cost = self.queue.popleft()
        self.queued_bytes -= cost
        return item

    async def wait(self) -> None:
        """Until something is queued (or the stream overflowed)."""
        if self.queue or self.overflowed:
            return
        wakeup = self.wakeup = asyncio.get_running_loop().create_future()
        try:
            await wakeup
        finally:
            if self.wakeup is wakeup:
                self.wakeup = None


class Relay(Protocol):
    """What a stream's relay offers the stream (`routing/relay.py`)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


RelayFactory = Callable[[Stream, Request], "Relay | None"]
"""Makes the relay of a new stream, or None for a watch of one namespace held whole."""


class WatchStream:
    """A client's stream of events: an async iterator whose `aclose` ends the stream and
    its relay even if it was never iterated (a connection refused it, or went first)."""

    def __init__(self, ops: WatchOps, stream: Stream, relay: Relay | None) -> None:
        self._ops = ops
        self._stream = stream
        self._relay = relay
        self._closed = False

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        stream = self._stream
        while not self._closed:
            if stream.overflowed:
                self._ops.dropped += 1
                await self.aclose()
                raise TooLarge(
                    f"watch fell more than {self._ops.buffer_bytes} bytes of changes behind; "
                    "re-subscribe and re-read"
                )
            if not stream.queue:
                await stream.wait()
                continue
            item = stream.take()
            if isinstance(item, dict):
                return item
            return await self._ops.event(item, stream.with_values)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.forget(self._stream)
        self._stream.wake()  # a reader waiting for the next event ends its iteration
        if self._relay is not None:
            await self._relay.close()


class WatchOps:
    def __init__(self, node: NodeServices, buffer_bytes: int) -> None:
        self.node = node
        self.buffer_bytes = buffer_bytes
        self._streams: set[Stream] = set()
        self._set_values: OrderedDict[int, list[str] | None] = OrderedDict()
        self.dropped = 0
        self.relays: RelayFactory | None = None
        """Set by the routing layer: relays for streams of sharded namespaces."""
        node.host.add_listener(self._on_change)

    def register(self, service: Service) -> None:
        service.register("watch", self.watch)

    def stats(self) -> dict[str, int]:
        return {
            "watch_streams": len(self._streams),
            "watch_queued_bytes": sum(s.queued_bytes for s in self._streams),
            "watch_dropped": self.dropped,
        }

    def _on_change(self, ch: Change) -> None:
        if not self._streams or reserved(ch.ns):
            return
        if not (ch.visible_before or ch.visible_after):
            return
        placement = self.node.host.node.placement
        sharding = placement.sharding(ch.ns)
        partition = None if sharding is None else placement.map.partition_of(ch.ns, ch.key)
        for stream in self._streams:
            stream.offer(ch, partition)

    def open(self, ns: str | None, prefix: str, with_values: bool) -> Stream:
        """A stream of this node's committed changes (a relay or a peer's feed reads it)."""
        stream = Stream(ns, prefix, with_values, self.buffer_bytes)
        self._streams.add(stream)
        return stream

    def forget(self, stream: Stream) -> None:
        self._streams.discard(stream)

    async def watch(self, req: Request) -> AsyncIterator[Any]:
        a = req.args
        stream = self.open(a.get("ns"), a.get("prefix") or "", a["values"])
        relay = self.relays(stream, req) if self.relays is not None else None
        stream.partitioned = relay is not None
        if relay is not None:
            try:
                await relay.start()
            except BaseException:
                self.forget(stream)
                await relay.close()
                raise
        return WatchStream(self, stream, relay)

    async def event(self, ch: Change, with_values: bool) -> dict[str, Any]:
        """The event a watcher sees for a committed change."""
        event: dict[str, Any] = {
            "ns": ch.ns,
            "key": ch.key,
            "event": event_name(ch),
            "origin": ch.origin,
            "seq": ch.seq,
        }
        if ch.entry is not None and ch.entry.agent is not None:
            event["agent"] = ch.entry.agent
        if not (with_values and ch.visible_after and ch.entry is not None):
            return event
        now = self.node.wall_ms()
        entry = ch.entry
        if entry.orset is not None and SET in entry.live_kinds(now):
            members = await self._set_members(ch)
            if members is not None:
                event["type"] = SET
                event["value"] = members
            return event
        # The value this change itself stored, not whatever a later write left.
        view = entry_view(ch.ns, ch.key, entry, now)
        if view is not None:
            event["type"] = view["type"]
            event["value"] = view["value"]
        return event

    async def _set_members(self, ch: Change) -> list[str] | None:
        """The whole set (a change carries only the members it touched): read once per change."""
        if ch.seq in self._set_values:
            return self._set_values[ch.seq]
        entry = await asyncio.to_thread(self.node.store.get, ch.ns, ch.key)
        now = self.node.wall_ms()
        members = entry.orset.members() if entry and entry.orset and entry.visible(now) else None
        self._set_values[ch.seq] = members
        while len(self._set_values) > SET_VALUES_KEPT:
            self._set_values.popitem(last=False)
        return members
