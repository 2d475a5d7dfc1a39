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
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Any

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


class _Stream:
    def __init__(self, ns: str | None, prefix: str, with_values: bool, limit: int) -> None:
        self.ns = ns
        self.prefix = prefix
        self.with_values = with_values
        self.limit = limit
        self.queue: deque[Change] = deque()
        self.queued_bytes = 0
        self.overflowed = False
        self.wakeup: asyncio.Future[None] | None = None

    def offer(self, ch: Change) -> None:
        if self.overflowed or (self.ns is not None and ch.ns != self.ns):
            return
        if not ch.key.startswith(self.prefix):
            return
        cost = ch.size + CHANGE_OVERHEAD
        if self.queue and self.queued_bytes + cost > self.limit:
            self.overflowed = True
            self.queue.clear()
            self.queued_bytes = 0
        else:
            self.queue.append(ch)
            self.queued_bytes += cost
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def take(self) -> Change:
        ch = self.queue.popleft()
        self.queued_bytes -= ch.size + CHANGE_OVERHEAD
        return ch


class WatchOps:
    def __init__(self, node: NodeServices, buffer_bytes: int) -> None:
        self.node = node
        self.buffer_bytes = buffer_bytes
        self._streams: set[_Stream] = set()
        self._set_values: OrderedDict[int, list[str] | None] = OrderedDict()
        self.dropped = 0
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
        for stream in self._streams:
            stream.offer(ch)

    async def watch(self, req: Request) -> AsyncIterator[Any]:
        a = req.args
        stream = _Stream(a.get("ns"), a.get("prefix") or "", a["values"], self.buffer_bytes)
        self._streams.add(stream)
        return self._events(stream)

    async def _events(self, stream: _Stream) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if stream.overflowed:
                    self.dropped += 1
                    raise TooLarge(
                        f"watch fell more than {self.buffer_bytes} bytes of changes behind; "
                        "re-subscribe and re-read"
                    )
                if not stream.queue:
                    stream.wakeup = loop.create_future()
                    await stream.wakeup
                    stream.wakeup = None
                    continue
                yield await self._event(stream.take(), stream.with_values)
        finally:
            self._streams.discard(stream)

    async def _event(self, ch: Change, with_values: bool) -> dict[str, Any]:
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
