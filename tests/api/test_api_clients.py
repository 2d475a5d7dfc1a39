"""Both clients against a real server: named operations, typed errors, streams, failures."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import ApiServer
from swarmnode.client import AsyncClient, Client
from swarmnode.errors import (
    ERROR_CLASSES,
    Conflict,
    InternalError,
    SwarmError,
    TooLarge,
    Unavailable,
)

# (method name, positional args, keyword args, op on the wire, args on the wire)
NAMED_OPERATIONS: list[tuple[str, tuple[Any, ...], dict[str, Any], str, dict[str, Any]]] = [
    ("ping", (), {}, "ping", {}),
    ("put", ("t", "k", 1), {}, "put", {"ns": "t", "key": "k", "value": 1}),
    ("put", ("t", "k", None), {}, "put", {"ns": "t", "key": "k", "value": None}),
    (
        "put",
        ("t", "k", "v"),
        {"ttl": 60, "meta": {"by": "a"}, "vector": np.array([1, 2], dtype=np.float32)},
        "put",
        {
            "ns": "t",
            "key": "k",
            "value": "v",
            "ttl": 60,
            "meta": {"by": "a"},
            "vector": struct.pack("<2f", 1.0, 2.0),
        },
    ),
    (
        "put",
        ("t", "k", "v"),
        {"if_absent": True},
        "put",
        {"ns": "t", "key": "k", "value": "v", "if_absent": True},
    ),
    ("get", ("t", "k"), {}, "get", {"ns": "t", "key": "k"}),
    ("delete", ("t", "k"), {}, "delete", {"ns": "t", "key": "k"}),
    ("list", ("t",), {}, "list", {"ns": "t"}),
    (
        "list",
        ("t",),
        {"prefix": "a/", "limit": 5, "cursor": "c"},
        "list",
        {"ns": "t", "prefix": "a/", "limit": 5, "cursor": "c"},
    ),
    ("list", ("t",), {"pattern": "a*"}, "list", {"ns": "t", "pattern": "a*"}),
    ("search", ("x*",), {}, "search", {"pattern": "x*"}),
    (
        "search",
        ("x",),
        {"ns": "t", "mode": "substring", "limit": 3},
        "search",
        {"pattern": "x", "ns": "t", "mode": "substring", "limit": 3},
    ),
    (
        "vsearch",
        ("v", (0.5, 1)),
        {},
        "vsearch",
        {"ns": "v", "vector": struct.pack("<2f", 0.5, 1.0)},
    ),
    (
        "vsearch",
        ("v",),
        {"text": "hello", "k": 3, "filter": {"tag": "x"}, "ef": 64},
        "vsearch",
        {"ns": "v", "k": 3, "text": "hello", "filter": {"tag": "x"}, "ef": 64},
    ),
    ("incr", ("c", "n"), {}, "incr", {"ns": "c", "key": "n", "by": 1}),
    ("incr", ("c", "n", -3), {"ttl": 5}, "incr", {"ns": "c", "key": "n", "by": -3, "ttl": 5}),
    ("sadd", ("s", "k", "one"), {}, "sadd", {"ns": "s", "key": "k", "members": ["one"]}),
    (
        "sadd",
        ("s", "k", {"b"}),
        {"ttl": 9},
        "sadd",
        {"ns": "s", "key": "k", "members": ["b"], "ttl": 9},
    ),
    ("srem", ("s", "k", ("a", "b")), {}, "srem", {"ns": "s", "key": "k", "members": ["a", "b"]}),
    ("smembers", ("s", "k"), {}, "smembers", {"ns": "s", "key": "k"}),
    ("ns_init", ("n",), {}, "ns_init", {"ns": "n"}),
    (
        "ns_init",
        ("n",),
        {"ttl": 3600, "policy": "mv", "dim": 384, "metric": "cosine", "embedder": "minilm"},
        "ns_init",
        {
            "ns": "n",
            "ttl": 3600,
            "policy": "mv",
            "dim": 384,
            "metric": "cosine",
            "embedder": "minilm",
        },
    ),
    ("ns_delete", ("n",), {}, "ns_delete", {"ns": "n"}),
    ("ns_stats", (), {}, "ns_stats", {}),
    ("ns_stats", ("n",), {}, "ns_stats", {"ns": "n"}),
    ("ns_list", (), {}, "ns_list", {}),
    ("members", (), {}, "members", {}),
    ("sync", (), {}, "sync", {}),
    ("sync", ("10.0.0.2:7946",), {}, "sync", {"peer": "10.0.0.2:7946"}),
    ("compact", (), {}, "compact", {}),
    ("compact", ("t",), {}, "compact", {"ns": "t"}),
    ("persist", ("s1",), {}, "persist", {"session_id": "s1"}),
    ("restore", ("s1",), {}, "restore", {"session_id": "s1"}),
    ("stats", (), {}, "stats", {}),
]

WIRE_ERRORS = [*ERROR_CLASSES.items(), ("made_up_code", SwarmError)]


def test_blocking_named_operations_send_their_op_and_only_the_arguments_given(
    threaded_server: Any, socket_path: Path
) -> None:
    with Client(socket_path) as client:
        for method, args, kwargs, op, wire_args in NAMED_OPERATIONS:
            assert getattr(client, method)(*args, **kwargs) == {"op": op, "args": wire_args}


async def test_async_named_operations_send_their_op_and_only_the_arguments_given(
    server: ApiServer, socket_path: Path
) -> None:
    async with AsyncClient(socket_path) as client:
        for method, args, kwargs, op, wire_args in NAMED_OPERATIONS:
            assert await getattr(client, method)(*args, **kwargs) == {"op": op, "args": wire_args}


def test_blocking_error_replies_raise_the_typed_exception(
    threaded_server: Any, socket_path: Path
) -> None:
    with Client(socket_path) as client:
        for code, cls in WIRE_ERRORS:
            with pytest.raises(cls) as caught:
                client.call("fail", code=code, message=f"it is {code}")
            assert type(caught.value) is cls
            assert (caught.value.code, caught.value.message) == (code, f"it is {code}")
        with pytest.raises(InternalError, match="dispatcher bug"):
            client.call("crash")
        assert client.ping() == {"op": "ping", "args": {}}


async def test_async_error_replies_raise_the_typed_exception(
    server: ApiServer, socket_path: Path
) -> None:
    async with AsyncClient(socket_path) as client:
        for code, cls in WIRE_ERRORS:
            with pytest.raises(cls) as caught:
                await client.call("fail", code=code, message=f"it is {code}")
            assert type(caught.value) is cls
            assert (caught.value.code, caught.value.message) == (code, f"it is {code}")
        with pytest.raises(InternalError, match="dispatcher bug"):
            await client.call("crash")
        assert await client.ping() == {"op": "ping", "args": {}}


def test_blocking_client_without_a_node_says_where_it_looked(socket_dir: Path) -> None:
    missing = socket_dir / "nowhere.sock"
    with pytest.raises(Unavailable, match="swarmnode run") as caught:
        Client(missing).ping()
    assert str(missing) in caught.value.message


async def test_async_client_without_a_node_says_where_it_looked(socket_dir: Path) -> None:
    missing = socket_dir / "nowhere.sock"
    with pytest.raises(Unavailable, match="swarmnode run") as caught:
        await AsyncClient(missing).ping()
    assert str(missing) in caught.value.message


def test_the_default_socket_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, socket_path: Path
) -> None:
    monkeypatch.setenv("SWARMNODE_SOCKET", str(socket_path))
    assert Client().socket_path == socket_path
    assert AsyncClient().socket_path == socket_path


async def test_async_calls_are_pipelined_and_matched_by_id(
    server: ApiServer, socket_path: Path, dispatcher: Any
) -> None:
    async with AsyncClient(socket_path) as client:
        slow = asyncio.create_task(client.call("wait", gate="slow", value="slow"))
        fast = await asyncio.gather(*(client.call("echo", i=i) for i in range(300)))
        assert fast == [{"i": i} for i in range(300)]
        assert not slow.done()
        dispatcher.open_gate("slow")
        assert await slow == "slow"
    assert server.stats()["connections_total"] == 1


async def test_two_hundred_async_clients_at_once(server: ApiServer, socket_path: Path) -> None:
    async def session(n: int) -> list[Any]:
        async with AsyncClient(socket_path) as client:
            return [await client.call("echo", client=n, call=i) for i in range(3)]

    results = await asyncio.gather(*(session(n) for n in range(200)))
    assert results == [[{"client": n, "call": i} for i in range(3)] for n in range(200)]
    assert server.stats()["connections_total"] == 200


async def test_a_crowd_larger_than_the_accept_queue_is_served(
    socket_path: Path, dispatcher: Any
) -> None:
    async with ApiServer(socket_path, dispatcher, ApiLimits(listen_backlog=2)):

        async def session(n: int) -> Any:
            async with AsyncClient(socket_path) as client:
                return await client.call("echo", n=n)

        results = await asyncio.gather(*(session(n) for n in range(100)))
    assert results == [{"n": n} for n in range(100)]


def test_fifty_blocking_clients_and_threads_sharing_one_client(
    threaded_server: Any, socket_path: Path
) -> None:
    def own_client(n: int) -> list[Any]:
        with Client(socket_path) as client:
            return [client.call("echo", n=n, i=i) for i in range(5)]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(own_client, range(50)))
    assert results == [[{"n": n, "i": i} for i in range(5)] for n in range(50)]

    shared = Client(socket_path)

    def use_shared(n: int) -> list[Any]:
        return [shared.call("echo", n=n, i=i) for i in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(use_shared, range(8)))
    shared.close()
    assert results == [[{"n": n, "i": i} for i in range(20)] for n in range(8)]


def test_blocking_timeout_raises_unavailable_and_the_client_carries_on(
    threaded_server: Any, socket_path: Path
) -> None:
    with Client(socket_path, timeout=0.1) as client:
        with pytest.raises(Unavailable, match="no reply"):
            client.call("wait", gate="never")
        client.timeout = 30.0  # a loaded machine may take longer than 0.1 s to answer
        assert client.ping() == {"op": "ping", "args": {}}


async def test_async_timeout_raises_unavailable_and_the_client_carries_on(
    server: ApiServer, socket_path: Path
) -> None:
    async with AsyncClient(socket_path, timeout=0.1) as client:
        with pytest.raises(Unavailable, match="no reply"):
            await client.call("wait", gate="never")
        client.timeout = 30.0  # a loaded machine may take longer than 0.1 s to answer
        assert await client.ping() == {"op": "ping", "args": {}}


async def test_async_request_over_the_frame_limit_is_refused_before_sending(
    server: ApiServer, socket_path: Path
) -> None:
    async with AsyncClient(socket_path, max_frame=1000) as client:
        with pytest.raises(TooLarge):
            await client.put("t", "k", b"x" * 2000)
        assert await client.ping() == {"op": "ping", "args": {}}
    assert server.stats()["requests"] == 1


def test_blocking_request_over_the_frame_limit_is_refused_before_sending(
    threaded_server: Any, socket_path: Path
) -> None:
    with Client(socket_path, max_frame=1000) as client:
        with pytest.raises(TooLarge):
            client.put("t", "k", b"x" * 2000)
        assert client.ping() == {"op": "ping", "args": {}}
    assert threaded_server.api.stats()["requests"] == 1


def test_blocking_reply_over_the_clients_frame_limit_drops_the_connection(
    threaded_server: Any, socket_path: Path
) -> None:
    with Client(socket_path, max_frame=1000) as client:
        with pytest.raises(Unavailable, match="exceeds max_frame"):
            client.call("big", size=5000)
        assert client.ping() == {"op": "ping", "args": {}}


def test_blocking_call_in_flight_when_the_node_goes_away_raises_unavailable(
    socket_path: Path, dispatcher: Any, start_threaded_server: Callable[[ApiLimits], Any]
) -> None:
    node = start_threaded_server(ApiLimits(close_grace=0.01))
    client = Client(socket_path)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.call("wait", gate="never")
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while "wait" not in dispatcher.started:
        threading.Event().wait(0.005)
    node.stop()
    caller.join()
    assert isinstance(outcome[0], Unavailable)
    assert "lost" in outcome[0].message

    start_threaded_server(ApiLimits())
    assert client.ping() == {"op": "ping", "args": {}}
    client.close()


async def test_async_calls_in_flight_when_the_node_goes_away_raise_unavailable(
    socket_path: Path, dispatcher: Any
) -> None:
    node = ApiServer(socket_path, dispatcher, ApiLimits(close_grace=0.01))
    await node.start()
    client = AsyncClient(socket_path)
    calls = [asyncio.create_task(client.call("wait", gate="never")) for _ in range(3)]
    while dispatcher.started.count("wait") < 3:
        await asyncio.sleep(0.005)
    await node.close()
    for call in calls:
        with pytest.raises(Unavailable, match="lost"):
            await call
    async with ApiServer(socket_path, dispatcher):
        assert await client.ping() == {"op": "ping", "args": {}}
    await client.close()


async def test_async_client_beyond_the_connection_limit_is_told_unavailable(
    socket_path: Path, dispatcher: Any
) -> None:
    limits = ApiLimits(max_connections=1)
    async with ApiServer(socket_path, dispatcher, limits), AsyncClient(socket_path) as first:
        await first.ping()
        with pytest.raises(Unavailable, match="too many connections"):
            await AsyncClient(socket_path).ping()


def test_blocking_stream_yields_every_event_then_stops(
    threaded_server: Any, socket_path: Path
) -> None:
    client = Client(socket_path)
    with client.stream("count", n=5) as events:
        assert list(events) == [0, 1, 2, 3, 4]


def test_blocking_stream_that_fails_raises_its_typed_error(
    threaded_server: Any, socket_path: Path
) -> None:
    events = Client(socket_path).stream("broken_stream")
    assert next(events) == 1
    with pytest.raises(Conflict, match="lost a race"):
        next(events)
    with pytest.raises(StopIteration):
        next(events)


@pytest.mark.parametrize("op", ["idle_stream", "flood"])
def test_closing_a_blocking_stream_closes_the_server_iterator(
    threaded_server: Any, socket_path: Path, op: str
) -> None:
    with Client(socket_path) as client:
        with client.stream(op) as events:
            assert next(events) in ("first", 0)
        assert client.call("streams_closed", at_least=1) == 1
        with pytest.raises(StopIteration):
            next(events)


def test_a_blocking_request_that_is_no_stream_cannot_be_watched(
    threaded_server: Any, socket_path: Path
) -> None:
    with pytest.raises(InternalError, match="did not start a stream"):
        Client(socket_path).watch("tasks")
    with pytest.raises(Conflict):
        Client(socket_path).stream("fail", code="conflict", message="no")


async def test_async_stream_yields_every_event_then_stops(
    server: ApiServer, socket_path: Path
) -> None:
    client = AsyncClient(socket_path)
    assert [event async for event in client.stream("count", n=5)] == [0, 1, 2, 3, 4]
    async with client.stream("count", n=2) as events:
        assert [event async for event in events] == [0, 1]


async def test_async_stream_that_fails_raises_its_typed_error(
    server: ApiServer, socket_path: Path
) -> None:
    events = AsyncClient(socket_path).stream("broken_stream")
    assert await anext(events) == 1
    with pytest.raises(Conflict, match="lost a race"):
        await anext(events)
    with pytest.raises(StopAsyncIteration):
        await anext(events)


@pytest.mark.parametrize("op", ["idle_stream", "flood"])
async def test_closing_an_async_stream_closes_the_server_iterator(
    server: ApiServer, socket_path: Path, op: str, dispatcher: Any
) -> None:
    async with AsyncClient(socket_path) as client:
        async with client.stream(op) as events:
            assert await anext(events) in ("first", 0)
        assert await client.call("streams_closed", at_least=1) == 1
        events = client.stream(op)
        await anext(events)
        await events.aclose()
        assert await client.call("streams_closed", at_least=2) == 2


async def test_an_async_watch_of_a_request_that_fails_raises_on_start(
    server: ApiServer, socket_path: Path
) -> None:
    client = AsyncClient(socket_path)
    with pytest.raises(InternalError, match="did not start a stream"):
        async with client.watch("tasks", prefix="a/"):
            pass
    with pytest.raises(Conflict):
        await client.stream("fail", code="conflict", message="no").start()
