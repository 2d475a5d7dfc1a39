"""`watch` against real nodes: local writes, expiry, replicated writes, filters and endings.

This is how the notifications namespace reaches agents, so what matters is
that every change shows up once, with what it was and where it came from, and
that a stream never ends silently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from nodeproc import NodeProcess

from swarmnode.client import AsyncClient, AsyncWatch, Client
from swarmnode.errors import BadRequest, Unavailable

EVENT_WAIT = 30.0
"""Seconds to wait for an event that must come; only a broken node runs it out."""


async def next_event(events: AsyncWatch) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), EVENT_WAIT)


def brief(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["event"], event["ns"], event["key"], event.get("value"), event["origin"])


async def test_local_writes_stream_in_order_with_values_filtered_by_namespace_and_prefix(
    node: NodeProcess,
) -> None:
    async with (
        AsyncClient(node.socket, timeout=30) as c,
        c.watch(ns="t-watch", prefix="a:") as events,
    ):
        await c.put("t-watch", "a:1", {"x": 1})
        await c.put("t-watch", "b:1", "other prefix")
        await c.put("elsewhere", "a:1", "other namespace")
        await c.incr("t-watch", "a:count", 2)
        await c.sadd("t-watch", "a:set", ["m1", "m2"])
        await c.delete("t-watch", "a:1")
        await c.delete("t-watch", "a:never-existed")
        await c.put("t-watch", "a:last", "end")
        got = [await next_event(events) for _ in range(5)]
    assert [brief(e) for e in got] == [
        ("put", "t-watch", "a:1", {"x": 1}, "local"),
        ("incr", "t-watch", "a:count", 2, "local"),
        ("sadd", "t-watch", "a:set", ["m1", "m2"], "local"),
        ("delete", "t-watch", "a:1", None, "local"),
        ("put", "t-watch", "a:last", "end", "local"),
    ]
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    assert got[0]["type"] == "register" and got[1]["type"] == "counter"


async def test_an_entry_that_expires_is_announced_by_the_sweeper(node: NodeProcess) -> None:
    async with (
        AsyncClient(node.socket, timeout=30) as c,
        c.watch(ns="t-expire") as events,
    ):
        await c.put("t-expire", "short", "lived", ttl=1)
        put = await next_event(events)
        expired = await next_event(events)
    assert brief(put) == ("put", "t-expire", "short", "lived", "local")
    assert brief(expired) == ("expire", "t-expire", "short", None, "sweep")


@pytest.mark.timeout(120)
def test_the_blocking_client_iterates_the_same_events(node: NodeProcess) -> None:
    with Client(node.socket, timeout=30) as c, c.watch(ns="t-blocking") as events:
        c.put("t-blocking", "k", "v1")
        c.delete("t-blocking", "k")
        first, second = next(events), next(events)
    assert brief(first) == ("put", "t-blocking", "k", "v1", "local")
    assert brief(second) == ("delete", "t-blocking", "k", None, "local")


def wait_for_peers(node: NodeProcess, alive: int) -> None:
    deadline = time.monotonic() + EVENT_WAIT
    with node.client() as c:
        while sum(m["state"] == "alive" for m in c.members()["members"]) < alive:
            assert time.monotonic() < deadline, f"cluster never reached {alive} alive members"
            time.sleep(0.05)


async def test_writes_on_another_node_arrive_as_remote_events(
    launch_node: Callable[..., NodeProcess],
) -> None:
    a = launch_node()
    b = launch_node(None, "--join", a.gossip)
    wait_for_peers(a, 2)
    async with (
        AsyncClient(a.socket, timeout=30) as on_a,
        AsyncClient(b.socket, timeout=30) as on_b,
        on_a.watch(ns="t-remote") as events,
    ):
        await on_b.put("t-remote", "k", {"from": "b"})
        arrived = await next_event(events)
        await on_b.delete("t-remote", "k")
        deleted = await next_event(events)
    assert brief(arrived) == ("put", "t-remote", "k", {"from": "b"}, "remote")
    assert brief(deleted) == ("delete", "t-remote", "k", None, "remote")


async def test_a_bad_watch_request_fails_when_it_starts(node: NodeProcess) -> None:
    with pytest.raises(BadRequest, match="invalid namespace"):
        async with AsyncClient(node.socket, timeout=30).watch(ns="not a namespace"):
            pass
    with pytest.raises(BadRequest, match="invalid namespace"):
        Client(node.socket, timeout=30).watch(ns="not a namespace")


async def test_a_stream_ends_loudly_when_the_node_stops(node: NodeProcess) -> None:
    async with AsyncClient(node.socket, timeout=30).watch() as events:
        node.stop()
        with pytest.raises(Unavailable):
            await next_event(events)


async def test_each_event_carries_the_value_its_own_write_stored(node: NodeProcess) -> None:
    async with (
        AsyncClient(node.socket, timeout=30) as c,
        c.watch(ns="t-batch") as events,
    ):
        await asyncio.gather(*(c.put("t-batch", "k", f"v{i}") for i in range(32)))
        values = [(await next_event(events))["value"] for _ in range(32)]
    assert len(set(values)) == 32
