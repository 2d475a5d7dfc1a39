"""What a node acknowledged is on disk: SIGKILL right after a stream of writes loses none.

The node runs as a real process with fsync on (as in production), the
clients are real socket clients, and the crash is SIGKILL: no shutdown code,
no flush, no goodbye. Group commit must not trade this away for speed, and
its batches must actually form when many clients write at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from nodeproc import NodeProcess

from swarmnode.client import AsyncClient
from swarmnode.errors import Unavailable

WRITERS = 8
ACKS_BEFORE_KILL = 800
LIVENESS_TIMEOUT = 120.0
"""Seconds the writers may take to reach ACKS_BEFORE_KILL: a hang guard, not a speed check."""


class AckLog:
    """What the node acknowledged, recorded only after each call returned."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.counters: dict[int, int] = {}
        self.members: set[str] = set()
        self.unexpected: list[BaseException] = []

    def puts(self) -> int:
        with self.lock:
            return len(self.values)


def _writer(node: NodeProcess, writer: int, log: AckLog, stop: threading.Event) -> None:
    try:
        with node.client(timeout=60) as c:
            i = 0
            while not stop.is_set():
                key = f"w{writer}/{i:06d}"
                value = {"writer": writer, "i": i, "pad": "x" * (i % 64)}
                c.put("default", key, value, meta={"n": i})
                with log.lock:
                    log.values[key] = value
                count = c.incr("default", f"count/{writer}")["value"]
                with log.lock:
                    log.counters[writer] = count
                member = f"{writer}:{i}"
                c.sadd("team", "members", [member])
                with log.lock:
                    log.members.add(member)
                i += 1
    except Unavailable:
        pass  # the node was killed under us: expected
    except BaseException as exc:
        with log.lock:
            log.unexpected.append(exc)


def _write_until(node: NodeProcess, acks: int, end: Callable[[], None]) -> AckLog:
    """Stream writes from WRITERS clients; call `end` (kill or stop the node) mid-stream."""
    log = AckLog()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(node, w, log, stop), daemon=True)
        for w in range(WRITERS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + LIVENESS_TIMEOUT
    while log.puts() < acks and time.monotonic() < deadline and not log.unexpected:
        time.sleep(0.005)
    end()  # while the writers are still mid-stream
    stop.set()
    for t in threads:
        t.join(60)
    assert not log.unexpected, log.unexpected
    assert log.puts() >= acks, "writers stalled before the end"
    return log


def _assert_all_there(node: NodeProcess, log: AckLog) -> None:
    with node.client() as c:
        for key, value in log.values.items():
            got = c.get("default", key)
            assert got["value"] == value and got["meta"] == {"n": value["i"]}, key
        for writer, acked in log.counters.items():
            # at most one more: an increment committed but cut off before its reply
            assert acked <= c.get("default", f"count/{writer}")["value"] <= acked + 1
        stored = set(c.smembers("team", "members")["members"])
        assert log.members <= stored
        assert len(stored - log.members) <= WRITERS


def test_every_acknowledged_write_survives_a_sigkill(
    launch_node: Callable[..., NodeProcess],
) -> None:
    node = launch_node()
    log = _write_until(node, ACKS_BEFORE_KILL, node.kill)
    assert node.socket.exists()  # a crash leaves it behind
    again = launch_node(node.data_dir)
    assert again.node_id == node.node_id
    _assert_all_there(again, log)


def test_a_graceful_stop_under_load_exits_zero_and_keeps_every_acknowledged_write(
    launch_node: Callable[..., NodeProcess],
) -> None:
    node = launch_node()
    codes = []
    log = _write_until(node, ACKS_BEFORE_KILL // 4, lambda: codes.append(node.stop()))
    assert codes == [0], node.log()
    assert "Traceback" not in node.log()
    again = launch_node(node.data_dir)
    _assert_all_there(again, log)


async def _hammer(socket_path, clients: int, puts_each: int) -> None:
    async def one(i: int) -> None:
        async with AsyncClient(socket_path, timeout=60) as c:
            for j in range(puts_each):
                await c.put("default", f"gc/{i}/{j}", j)

    await asyncio.gather(*(one(i) for i in range(clients)))


def test_fifty_concurrent_clients_share_commits(launch_node) -> None:
    node = launch_node()
    with node.client() as c:
        before = c.stats()["writer"]
    asyncio.run(_hammer(node.socket, clients=50, puts_each=20))
    with node.client() as c:
        after = c.stats()["writer"]
        assert c.get("default", "gc/49/19")["value"] == 19
        assert c.list("default", prefix="gc/", limit=2000)["cursor"] is None
        assert len(c.list("default", prefix="gc/", limit=2000)["items"]) == 1000
    ops = after["ops"] - before["ops"]
    batches = after["batches"] - before["batches"]
    assert ops >= 1000
    assert after["max_batch"] > 1
    assert batches < ops, f"{ops} writes took {batches} commits: no group commit"
