"""redis-py's asyncio client against a real node: many connections at once, pipelines, pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from .conftest import RespNode

WAIT_S = 60.0


@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_concurrent_clients_and_pipelines(
    resp_node: RespNode, unique: Callable[[str], str], transport: str
) -> None:
    if transport == "unix":
        r = aioredis.Redis(unix_socket_path=str(resp_node.socket), socket_timeout=WAIT_S)
    else:
        r = aioredis.Redis(host=resp_node.host, port=resp_node.port, socket_timeout=WAIT_S)
    counter = unique("aio-ctr")
    try:

        async def worker(i: int) -> None:
            key = unique(f"aio-{i}")
            await r.set(key, str(i))
            assert await r.get(key) == str(i).encode()
            await r.incr(counter)

        await asyncio.gather(*(worker(i) for i in range(40)))
        assert await r.get(counter) == b"40"
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(50):
                pipe.incrby(counter, 2)
                pipe.get(counter)
            results = await pipe.execute()
        assert results == [v for i in range(50) for v in (42 + 2 * i, str(42 + 2 * i).encode())]
    finally:
        await r.aclose()


async def test_keyspace_notifications_in_resp3(
    resp_node: RespNode, unique: Callable[[str], str]
) -> None:
    r = aioredis.Redis(unix_socket_path=str(resp_node.socket), protocol=3, socket_timeout=WAIT_S)
    k = unique("aio-note")
    pubsub = r.pubsub()
    try:
        await pubsub.subscribe(f"__keyspace@0__:{k}")
        first = await pubsub.get_message(timeout=WAIT_S)
        assert first is not None and first["type"] == "subscribe"
        await r.sadd(k, "m", "n")
        await r.srem(k, "m")
        await r.srem(k, "n")  # the set is gone: the node reports a delete
        events = []
        async with asyncio.timeout(WAIT_S):
            while len(events) < 3:
                message = await pubsub.get_message(timeout=1)
                if message is not None and message["type"] == "message":
                    events.append(message["data"])
        assert events == [b"sadd", b"srem", b"del"]
        assert await r.get(unique("absent")) is None
    finally:
        await pubsub.aclose()
        await r.aclose()
