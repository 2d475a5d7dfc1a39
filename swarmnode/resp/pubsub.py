"""Keyspace notifications: SUBSCRIBE and PSUBSCRIBE over the node's `watch` stream.

A connection that subscribes to anything gets one `watch` stream of every
namespace (values off); each change is turned into the two channels Redis
would publish it on, `__keyspace@0__:<key>` (payload: the event name) and
`__keyevent@0__:<event>` (payload: the key), and sent to the connection for
each of its channels and patterns that match. Events are named as Redis
names them (`EVENTS`). Any channel may be subscribed to, as in Redis, but
only these two families ever carry messages (there is no PUBLISH).

A subscriber that falls too far behind loses its stream: the node ends the
watch when its queue overflows, and the connection is then closed, as Redis
disconnects a pub/sub client past its output buffer limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from swarmnode.errors import SwarmError
from swarmnode.resp.codec import Push, Replies
from swarmnode.resp.glob import compile_glob
from swarmnode.resp.keys import redis_name

log = logging.getLogger("swarmnode.resp")

KEYSPACE = "__keyspace@0__:"
KEYEVENT = "__keyevent@0__:"
EVENTS = {
    "put": "set",
    "delete": "del",
    "expire": "expired",
    "incr": "incrby",
    "sadd": "sadd",
    "srem": "srem",
    "ttl": "expire",
}
"""The node's watch event names and the Redis event each is published as. A change that
arrived from a peer is a `put` whatever its kind, so it is published as `set`."""


class Subscriptions:
    """The channels and patterns of one connection, and the stream that feeds them."""

    def __init__(
        self,
        open_watch: Callable[[], Awaitable[AsyncIterator[dict[str, Any]]]],
        push: Callable[[Any], None],
        lost: Callable[[str], None],
    ) -> None:
        self._open_watch = open_watch
        self._push = push
        self._lost = lost
        self.channels: set[bytes] = set()
        self.patterns: dict[bytes, re.Pattern[str]] = {}
        self._pump: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return len(self.channels) + len(self.patterns)

    async def subscribe(self, channels: list[bytes]) -> Replies:
        replies = Replies()
        for channel in channels:
            self.channels.add(channel)
            replies.append(Push([b"subscribe", channel, self.count]))
        await self._ensure_stream()
        return replies

    async def psubscribe(self, patterns: list[bytes]) -> Replies:
        replies = Replies()
        for pattern in patterns:
            self.patterns[pattern] = compile_glob(pattern.decode("utf-8", "surrogateescape"))
            replies.append(Push([b"psubscribe", pattern, self.count]))
        await self._ensure_stream()
        return replies

    async def unsubscribe(self, channels: list[bytes]) -> Replies:
        targets = channels or sorted(self.channels)
        replies = Replies()
        for channel in targets:
            self.channels.discard(channel)
            replies.append(Push([b"unsubscribe", channel, self.count]))
        if not replies:
            replies.append(Push([b"unsubscribe", None, self.count]))
        await self._stop_if_idle()
        return replies

    async def punsubscribe(self, patterns: list[bytes]) -> Replies:
        targets = patterns or sorted(self.patterns)
        replies = Replies()
        for pattern in targets:
            self.patterns.pop(pattern, None)
            replies.append(Push([b"punsubscribe", pattern, self.count]))
        if not replies:
            replies.append(Push([b"punsubscribe", None, self.count]))
        await self._stop_if_idle()
        return replies

    async def close(self) -> None:
        """Stop the stream (the connection is gone)."""
        self.channels.clear()
        self.patterns.clear()
        await self._stop_if_idle()

    async def _ensure_stream(self) -> None:
        if self._pump is None and self.count:
            events = await self._open_watch()
            self._pump = asyncio.get_running_loop().create_task(self._run(events))

    async def _stop_if_idle(self) -> None:
        if self._pump is not None and not self.count:
            pump, self._pump = self._pump, None
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _run(self, events: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for event in events:
                self.publish(event)
        except SwarmError as exc:
            log.info("resp_keyspace_stream_ended code=%s message=%s", exc.code, exc.message)
            self._lost(exc.message)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def publish(self, event: dict[str, Any]) -> None:
        """Send one watch event to the channels and patterns it matches."""
        name = EVENTS.get(event["event"], event["event"])
        key = redis_name(event["ns"], event["key"])
        for channel, payload in ((KEYSPACE + key, name), (KEYEVENT + name, key)):
            raw = channel.encode()
            data = payload.encode()
            if raw in self.channels:
                self._push(Push([b"message", raw, data]))
            for pattern, regex in self.patterns.items():
                if regex.fullmatch(channel):
                    self._push(Push([b"pmessage", pattern, raw, data]))
