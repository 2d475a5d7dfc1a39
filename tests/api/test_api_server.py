"""The server over a real Unix socket, spoken to byte by byte."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from swarmnode.api.framing import encode_frame
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import ApiServer


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for something the server does after the client has stopped watching."""
    while not condition():
        await asyncio.sleep(0.005)


async def works(open_raw: Any) -> None:
    """A fresh connection gets a normal reply."""
    fresh = await open_raw()
    await fresh.request(1, "echo", hello="again")
    assert await fresh.frame() == {"id": 1, "ok": True, "result": {"hello": "again"}}


async def test_a_request_gets_a_reply_with_its_id(server: ApiServer, open_raw: Any) -> None:
    conn = await open_raw()
    await conn.request(41, "echo", ns="tasks", value=b"\x00\x01")
    assert await conn.frame() == {
        "id": 41,
        "ok": True,
        "result": {"ns": "tasks", "value": b"\x00\x01"},
    }


async def test_pipelined_replies_come_back_in_completion_order(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    await conn.send_bytes(
        encode_frame({"id": 1, "op": "wait", "args": {"gate": "a", "value": "slow"}})
        + encode_frame({"id": 2, "op": "echo", "args": {"v": "fast"}})
    )
    assert await conn.frame() == {"id": 2, "ok": True, "result": {"v": "fast"}}
    await conn.request(3, "open", gate="a")
    replies = {(f := await conn.frame())["id"]: f for _ in range(2)}
    assert replies[1]["result"] == "slow"
    assert replies[3]["result"] is True


async def test_dispatch_sees_the_connection_and_request_ids(
    server: ApiServer, open_raw: Any
) -> None:
    first, second = await open_raw(), await open_raw()
    await first.request(5, "context")
    await second.request(5, "context")
    a, b = (await first.frame())["result"], (await second.frame())["result"]
    assert a["request"] == b["request"] == 5
    assert a["connection"] != b["connection"]


async def test_garbage_payload_gets_bad_request_and_the_connection_goes_on(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    await conn.send_bytes(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
    reply = await conn.frame()
    assert reply["id"] is None
    assert reply["error"]["code"] == "bad_request"
    await conn.request(2, "echo", still="here")
    assert (await conn.frame())["result"] == {"still": "here"}
    assert server.stats()["bad_frames"] == 1


@pytest.mark.parametrize(
    ("value", "expected_id"),
    [
        pytest.param([1, "echo", {}], None, id="array"),
        pytest.param(12, None, id="int"),
        pytest.param({"id": "1", "op": "echo", "args": {}}, None, id="str-id"),
        pytest.param({"id": 7, "op": 1, "args": {}}, 7, id="int-op"),
        pytest.param({"id": 7, "op": "echo", "args": "x"}, 7, id="str-args"),
    ],
)
async def test_wrong_shapes_get_bad_request_with_the_readable_id(
    server: ApiServer, open_raw: Any, value: Any, expected_id: int | None
) -> None:
    conn = await open_raw()
    await conn.send(value)
    reply = await conn.frame()
    assert reply["ok"] is False
    assert reply["id"] == expected_id
    assert reply["error"]["code"] == "bad_request"
    await conn.request(8, "echo")
    assert await conn.frame() == {"id": 8, "ok": True, "result": {}}


async def test_an_oversized_length_gets_too_large_then_the_connection_closes(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    await conn.request(1, "echo", before="limit")
    await conn.send_bytes(struct.pack(">I", server.limits.max_frame + 1) + b"xxxx")
    frames = [await conn.frame(), await conn.frame()]
    assert await conn.closed_by_server()
    by_id = {f["id"]: f for f in frames}
    assert by_id[1]["result"] == {"before": "limit"}
    assert by_id[None]["error"]["code"] == "too_large"
    assert server.stats()["oversized_frames"] == 1
    await works(open_raw)


async def test_bytes_of_another_protocol_close_the_connection(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    await conn.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (await conn.frame())["error"]["code"] == "too_large"
    assert await conn.closed_by_server()
    await works(open_raw)


async def test_random_bytes_never_hurt_the_server(server: ApiServer, open_raw: Any) -> None:
    junk = bytes((i * 7919 + 13) % 256 for i in range(20000))
    for start in range(0, 20000, 4000):
        conn = await open_raw()
        await conn.send_bytes(junk[start : start + 4000])
        conn.writer.write_eof()
        for frame in await conn.rest():
            assert frame["ok"] is False
            assert frame["error"]["code"] in ("bad_request", "too_large")
        await works(open_raw)


async def test_a_truncated_frame_at_disconnect_is_counted_and_harmless(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    await conn.send_bytes(encode_frame({"id": 1, "op": "echo", "args": {}})[:-3])
    await conn.close()
    await eventually(lambda: server.stats()["truncated_frames"] == 1)
    await works(open_raw)


async def test_a_client_done_sending_still_gets_the_replies_of_running_requests(
    server: ApiServer, open_raw: Any, dispatcher: Any
) -> None:
    """EOF from the client ends reading, not the connection: what runs still answers."""
    conn = await open_raw()
    await conn.request(1, "wait", gate="g", value="late")
    await conn.request(2, "echo", now=True)
    conn.writer.write_eof()
    assert await conn.frame() == {"id": 2, "ok": True, "result": {"now": True}}
    opener = await open_raw()
    await opener.request(1, "open", gate="g")
    assert (await opener.frame())["result"] is True
    assert await conn.rest() == [{"id": 1, "ok": True, "result": "late"}]


async def test_a_second_request_with_an_id_still_in_flight_is_refused(
    server: ApiServer, open_raw: Any, dispatcher: Any
) -> None:
    conn = await open_raw()
    await conn.request(1, "wait", gate="g", value="first")
    await conn.request(1, "echo")
    reply = await conn.frame()
    assert reply["id"] == 1
    assert reply["error"]["code"] == "bad_request"
    dispatcher.open_gate("g")
    assert await conn.frame() == {"id": 1, "ok": True, "result": "first"}


async def test_swarm_errors_keep_their_code_and_other_exceptions_become_internal(
    server: ApiServer, open_raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await open_raw()
    await conn.request(1, "fail", code="not_found", message="no key k")
    assert await conn.frame() == {
        "id": 1,
        "ok": False,
        "error": {"code": "not_found", "message": "no key k"},
    }
    with caplog.at_level(logging.ERROR, logger="swarmnode.api"):
        await conn.request(2, "crash")
        reply = await conn.frame()
    assert reply["error"]["code"] == "internal"
    assert "RuntimeError" in reply["error"]["message"]
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "op=crash" in record.getMessage()
    await conn.request(3, "unencodable")
    assert (await conn.frame())["error"]["code"] == "internal"
    assert server.stats()["errors"] == {"not_found": 1, "internal": 2}


async def test_a_reply_larger_than_the_frame_limit_becomes_too_large(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    async with ApiServer(socket_path, dispatcher, ApiLimits(max_frame=1000), eager_ops):
        conn = await open_raw()
        await conn.request(1, "big", size=2000)
        assert (await conn.frame())["error"]["code"] == "too_large"
        await conn.request(2, "big", size=10)
        assert (await conn.frame())["result"] == b"x" * 10


async def test_a_full_connection_stops_being_read_until_a_slot_frees(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    async with ApiServer(
        socket_path, dispatcher, ApiLimits(max_inflight_per_conn=2), eager_ops
    ) as api:
        conn = await open_raw()
        await conn.request(1, "wait", gate="a", value="a")
        await conn.request(2, "wait", gate="b", value="b")
        await conn.request(3, "echo", n=3)
        await works(open_raw)
        for _ in range(20):
            await asyncio.sleep(0)
        assert dispatcher.started.count("echo") == 1
        assert api.stats()["inflight"] == 2
        dispatcher.open_gate("b")
        replies = {(f := await conn.frame())["id"]: f["result"] for _ in range(2)}
        assert replies == {2: "b", 3: {"n": 3}}
        dispatcher.open_gate("a")
        assert (await conn.frame())["result"] == "a"


async def test_a_client_that_stops_reading_replies_stops_being_read(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    """Replies of a MiB pile up unread: the server starts no more than its in-flight slots
    allow (one, eagerly: the first reply already overfills the transport), and serves the
    rest once the client reads again."""
    limits = ApiLimits(max_inflight_per_conn=4)
    async with ApiServer(socket_path, dispatcher, limits, eager_ops):
        conn = await open_raw()
        await conn.send_bytes(
            b"".join(
                encode_frame({"id": i, "op": "big", "args": {"size": 1 << 20}})
                for i in range(20)
            )
        )
        await works(open_raw)
        for _ in range(20):
            await asyncio.sleep(0)
        assert 1 <= dispatcher.started.count("big") <= 4
        replies = [await conn.frame() for _ in range(20)]
        assert sorted(f["id"] for f in replies) == list(range(20))
        assert all(f["result"] == b"x" * (1 << 20) for f in replies)


async def test_a_stream_sends_its_events_then_an_end(server: ApiServer, open_raw: Any) -> None:
    conn = await open_raw()
    await conn.request(4, "count", n=3)
    assert await conn.frame() == {"id": 4, "ok": True, "result": {"stream": True}}
    assert [await conn.frame() for _ in range(4)] == [
        {"id": 4, "event": 0},
        {"id": 4, "event": 1},
        {"id": 4, "event": 2},
        {"id": 4, "end": True},
    ]
    await conn.request(5, "echo")
    assert (await conn.frame())["id"] == 5


async def test_a_failing_stream_ends_with_its_error(server: ApiServer, open_raw: Any) -> None:
    conn = await open_raw()
    await conn.request(1, "broken_stream")
    assert (await conn.frame())["result"] == {"stream": True}
    assert await conn.frame() == {"id": 1, "event": 1}
    assert await conn.frame() == {
        "id": 1,
        "end": True,
        "error": {"code": "conflict", "message": "stream lost a race"},
    }


@pytest.mark.parametrize("op", ["idle_stream", "flood"])
async def test_cancel_ends_the_stream_and_closes_its_iterator(
    server: ApiServer, open_raw: Any, dispatcher: Any, op: str
) -> None:
    conn = await open_raw()
    await conn.request(1, op)
    assert (await conn.frame())["result"] == {"stream": True}
    await conn.request(2, "cancel", id=1)
    seen = []
    while len(seen) < 2:
        frame = await conn.frame()
        if "event" not in frame:
            seen.append(frame)
    assert {"id": 2, "ok": True, "result": {"cancelled": True}} in seen
    assert {"id": 1, "end": True} in seen
    assert dispatcher.streams_closed == 1
    assert server.stats()["streams_open"] == 0
    await conn.request(3, "cancel", id=1)
    while (frame := await conn.frame()).get("id") != 3:
        pass
    assert frame["result"] == {"cancelled": False}


@pytest.mark.parametrize("op", ["idle_stream", "flood"])
async def test_a_client_leaving_mid_stream_closes_the_iterator(
    server: ApiServer, open_raw: Any, dispatcher: Any, op: str
) -> None:
    conn = await open_raw()
    await conn.request(1, op)
    assert (await conn.frame())["result"] == {"stream": True}
    await conn.frame()
    await conn.close()
    watcher = await open_raw()
    await watcher.request(1, "streams_closed", at_least=1)
    assert (await watcher.frame())["result"] == 1
    await eventually(lambda: server.stats()["connections_open"] == 1)


async def test_streams_per_connection_are_bounded(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    async with ApiServer(
        socket_path, dispatcher, ApiLimits(max_streams_per_conn=1), eager_ops
    ) as api:
        conn = await open_raw()
        await conn.request(1, "idle_stream")
        assert (await conn.frame())["result"] == {"stream": True}
        assert (await conn.frame())["event"] == "first"
        await conn.request(2, "idle_stream")
        reply = await conn.frame()
        assert reply["id"] == 2
        assert reply["error"]["code"] == "too_large"
        assert api.stats()["streams_open"] == 1


async def test_connections_beyond_the_limit_are_told_and_closed(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    async with ApiServer(socket_path, dispatcher, ApiLimits(max_connections=2), eager_ops) as api:
        await works(open_raw)
        await works(open_raw)
        third = await open_raw()
        reply = await third.frame()
        assert reply["id"] is None
        assert reply["error"]["code"] == "unavailable"
        assert await third.closed_by_server()
        assert api.stats()["connections_refused"] == 1


async def test_close_lets_running_requests_finish_and_refuses_new_clients(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    api = ApiServer(socket_path, dispatcher, ApiLimits(close_grace=60), eager_ops)
    await api.start()
    conn = await open_raw()
    await conn.request(1, "wait", gate="g", value="finished")
    await conn.request(2, "idle_stream")
    await eventually(lambda: dispatcher.started.count("idle_stream") == 1)
    closing = asyncio.create_task(api.close())
    await eventually(lambda: not os.path.exists(socket_path))
    with pytest.raises(OSError):
        await open_raw()
    dispatcher.open_gate("g")
    await closing
    frames = [frame for frame in await conn.rest() if "event" not in frame]
    assert {"id": 1, "ok": True, "result": "finished"} in frames
    assert {
        "id": 2,
        "end": True,
        "error": {"code": "unavailable", "message": "node is shutting down"},
    } in frames
    assert dispatcher.streams_closed == 1


async def test_close_cancels_requests_that_outlast_the_grace_period(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    api = ApiServer(socket_path, dispatcher, ApiLimits(close_grace=0.05), eager_ops)
    await api.start()
    conn = await open_raw()
    await conn.request(1, "wait", gate="never")
    await eventually(lambda: "wait" in dispatcher.started)
    await api.close()
    assert await conn.closed_by_server()
    assert api.stats()["connections_open"] == 0
