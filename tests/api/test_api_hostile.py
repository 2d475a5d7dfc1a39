"""Clients that stall, flood or echo: what they can make the server hold stays bounded.

Real sockets; every wait is on a condition (a connection closed by the server, a
counter reached), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.api.framing import MAX_ERROR_MESSAGE, FrameDecoder, cut_message, encode_frame
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import ApiServer
from swarmnode.errors import SwarmError
from swarmnode.settings import ConfigError

HEADER = struct.Struct(">I")
MIB = 1 << 20


async def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def partial_frame(declared: int, sent: int) -> bytes:
    """The header of a frame of `declared` payload bytes and the first `sent` of them."""
    return HEADER.pack(declared) + b"\x00" * sent


# --- error messages ------------------------------------------------------------------


@given(st.text(max_size=3000))
def test_a_cut_message_fits_the_limit_and_keeps_its_start(message: str) -> None:
    cut = cut_message(message)
    assert len(cut.encode()) <= MAX_ERROR_MESSAGE
    if len(message.encode()) <= MAX_ERROR_MESSAGE:
        assert cut == message
    else:
        kept = cut.rsplit("... (", 1)[0]
        assert message.startswith(kept) and len(kept.encode()) >= MAX_ERROR_MESSAGE - 64


async def test_an_error_quoting_a_huge_input_is_cut_to_a_kibibyte(
    server: ApiServer, open_raw: Any
) -> None:
    conn = await open_raw()
    huge = "n" * (5 * MIB)
    await conn.request(1, "fail", code="bad_request", message=f"no namespace {huge!r}")
    reply = await conn.frame()
    assert reply["error"]["code"] == "bad_request"
    message = reply["error"]["message"]
    assert len(message.encode()) <= MAX_ERROR_MESSAGE
    assert message.startswith("no namespace 'nnn") and "bytes cut)" in message
    await conn.request(2, "fail", code="not_found", message="short and whole")
    assert (await conn.frame())["error"]["message"] == "short and whole"
    stats = server.stats()
    assert stats["error_messages_cut"] == 1
    assert stats["errors"] == {"bad_request": 1, "not_found": 1}


def test_a_real_node_answers_a_5_mib_namespace_with_a_short_error(shared_node: Any) -> None:
    with shared_node.client() as c, pytest.raises(SwarmError) as raised:
        c.get("n" * (5 * MIB), "k")
    assert raised.value.code == "bad_request"
    assert len(raised.value.message.encode()) <= MAX_ERROR_MESSAGE


# --- frames that never finish ------------------------------------------------------------


async def test_a_frame_stalled_midway_is_cut_off_and_its_buffer_freed(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    limits = ApiLimits(frame_timeout=0.2, close_grace=0.1)
    async with ApiServer(socket_path, dispatcher, limits, eager_ops) as api:
        stalled = await open_raw()
        await stalled.request(1, "echo", before="the stall")
        await stalled.send_bytes(partial_frame(100_000, 1000))
        assert (await stalled.frame())["result"] == {"before": "the stall"}
        await eventually(lambda: api.stats()["buffered_bytes"] == 100_004)
        [goodbye] = await stalled.rest()
        assert goodbye["id"] is None and goodbye["error"]["code"] == "unavailable"
        assert "not complete within 0.2s" in goodbye["error"]["message"]
        stats = api.stats()
        assert stats["frames_timed_out"] == 1 and stats["buffered_bytes"] == 0
        assert stats["buffered_bytes_peak"] == 100_004
        fresh = await open_raw()
        await fresh.request(1, "echo", after="the stall")
        assert (await fresh.frame())["result"] == {"after": "the stall"}


async def test_a_frame_arriving_in_pieces_within_the_limit_is_served(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    limits = ApiLimits(frame_timeout=30.0)
    async with ApiServer(socket_path, dispatcher, limits, eager_ops) as api:
        conn = await open_raw()
        frame = encode_frame({"id": 7, "op": "echo", "args": {"blob": b"\x01" * (3 * MIB)}})
        for at in range(0, len(frame), 100_000):
            await conn.send_bytes(frame[at : at + 100_000])
        assert (await conn.frame())["result"] == {"blob": b"\x01" * (3 * MIB)}
        assert api.stats()["frames_timed_out"] == 0
        assert api.stats()["buffered_bytes"] == 0


async def test_time_the_server_spends_not_reading_does_not_count_against_a_frame(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    """A client whose frame waits behind its own full in-flight slots is not cut off:
    the clock runs only while the server is reading."""
    limits = ApiLimits(frame_timeout=0.2, max_inflight_per_conn=1, close_grace=0.1)
    async with ApiServer(socket_path, dispatcher, limits, eager_ops) as api:
        busy = await open_raw()
        third = encode_frame({"id": 3, "op": "echo", "args": {"third": True}})
        await busy.send_bytes(
            encode_frame({"id": 1, "op": "wait", "args": {"gate": "g", "value": 1}})
            + encode_frame({"id": 2, "op": "echo", "args": {"second": True}})
            + third[:5]
        )
        # Another client stalls mid-frame and is cut off: a whole frame_timeout has passed
        # while `busy` could not be read.
        stalled = await open_raw()
        await stalled.send_bytes(partial_frame(1000, 10))
        await stalled.rest()
        assert api.stats()["frames_timed_out"] == 1
        dispatcher.open_gate("g")
        await busy.send_bytes(third[5:])
        replies = {(f := await busy.frame())["id"]: f["result"] for _ in range(3)}
        assert replies == {1: 1, 2: {"second": True}, 3: {"third": True}}
        assert api.stats()["frames_timed_out"] == 1


# --- partial frames of many clients --------------------------------------------------------


async def test_a_frame_that_would_pass_the_buffer_budget_closes_its_connection(
    socket_path: Path, dispatcher: Any, eager_ops: frozenset[str], open_raw: Any
) -> None:
    limits = ApiLimits(max_frame=100_000, max_buffered_bytes=250_000, close_grace=0.1)
    async with ApiServer(socket_path, dispatcher, limits, eager_ops) as api:
        payload = encode_frame({"id": 1, "op": "echo", "args": {"b": b"x" * 90_000}})
        first, second, third = [await open_raw() for _ in range(3)]
        for conn in (first, second):
            await conn.send_bytes(payload[:1000])
        await eventually(lambda: api.stats()["buffered_bytes"] == 2 * len(payload))
        await third.request(9, "echo", small="still served")
        await third.send_bytes(payload[:1000])
        frames = {f["id"]: f for f in await third.rest()}
        assert frames[9]["result"] == {"small": "still served"}
        assert frames[None]["error"]["code"] == "unavailable"
        assert "250000-byte limit" in frames[None]["error"]["message"]
        assert api.stats()["frames_refused_buffer_cap"] == 1
        for conn in (first, second):
            await conn.send_bytes(payload[1000:])
            assert (await conn.frame())["result"] == {"b": b"x" * 90_000}
        assert api.stats()["buffered_bytes"] == 0
        again = await open_raw()
        await again.send_bytes(payload)
        assert (await again.frame())["result"] == {"b": b"x" * 90_000}


def test_the_budget_must_hold_one_largest_frame() -> None:
    with pytest.raises(ConfigError, match=r"\[api\] max_buffered_bytes"):
        ApiLimits(max_frame=1 << 20, max_buffered_bytes=1 << 19)
    with pytest.raises(ConfigError, match=r"\[api\] frame_timeout"):
        ApiLimits(frame_timeout=0)


def test_the_decoder_reports_the_frame_it_is_waiting_for() -> None:
    decoder = FrameDecoder(max_frame=1000)
    assert decoder.pending_frame == 0
    decoder.feed(b"\x00\x00")
    assert decoder.pending_frame == 0
    payload = b"\xc4\xfe" + b"v" * 254  # one msgpack bin of 254 bytes: 256 in all
    decoder.feed(b"\x01\x00" + payload[:10])
    assert decoder.pending_frame == 4 + 256
    [frame] = decoder.feed(payload[10:])
    assert frame.value == b"v" * 254
    assert decoder.pending_frame == 0 and decoder.buffered == 0


# --- memory, watched from outside ---------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def stall_server(socket_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    path = socket_dir / "run" / "api.sock"
    script = Path(__file__).with_name("stall_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(64 * MIB), "3.0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield proc, path
    finally:
        proc.terminate()
        proc.wait(30)


def blocking_request(path: Path, op: str, **args: Any) -> Any:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(path))
        s.sendall(encode_frame({"id": 1, "op": op, "args": args}))
        decoder = FrameDecoder()
        while True:
            data = s.recv(65536)
            assert data, "the server closed the connection"
            events = decoder.feed(data)
            if events:
                return events[0].value


def test_sixty_stalled_15_mib_frames_leave_the_server_small(
    stall_server: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """The audit's attack: 60 clients each send a 15 MiB frame but its last byte, and
    stall. Unbounded, the server held all of it (RSS 57 MB -> 984 MB). With a 64 MiB
    budget it holds at most four such frames at once, refuses the others at their
    header, and cuts every stalled one off after frame_timeout."""
    proc, path = stall_server
    assert blocking_request(path, "echo", warm="up")["result"] == {"warm": "up"}
    baseline = rss_kib(proc.pid)
    declared = 15 * MIB
    body = partial_frame(declared, declared - 1)
    stalled, refused = [], 0
    try:
        for _ in range(60):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(60)
            s.connect(str(path))
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                refused += 1
                s.close()
                continue
            stalled.append(s)
        assert refused >= 56 - len(stalled) and len(stalled) + refused == 60
        for s in stalled:  # each is cut off once frame_timeout has passed
            frames, decoder = [], FrameDecoder()
            while data := s.recv(65536):
                frames += decoder.feed(data)
            assert [f.value["error"]["code"] for f in frames] in ([], ["unavailable"])
    finally:
        for s in stalled:
            s.close()
    peak_growth = rss_kib(proc.pid, "VmHWM") - baseline
    stats = blocking_request(path, "stats")["result"]
    assert stats["frames_timed_out"] == len(stalled)
    assert stats["frames_refused_buffer_cap"] == refused > 0
    assert 3 * declared < stats["buffered_bytes_peak"] <= 64 * MIB
    assert stats["buffered_bytes"] == 0
    assert peak_growth < 2 * 64 * 1024, f"peak RSS grew by {peak_growth} KiB"
    assert blocking_request(path, "echo", still="served")["result"] == {"still": "served"}
