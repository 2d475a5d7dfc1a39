"""Gossip messages that arrive in one turn of the event loop are carried out as one Ready:
one batch for the writer thread, one wake-up deadline, not one of each per datagram."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from swarmnode.crdt.codec import encode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.replication.dissemination import MSG_DELTAS
from tests.inprocess import InProcessNode

PEER = ("127.0.0.2", 9)


def deltas_message(first: int, n: int) -> dict[str, object]:
    now_ms = time.time_ns() // 1_000_000
    return {
        "t": MSG_DELTAS,
        "ds": [
            ["default", f"k{i}", encode_entry(Entry().put_lww(make_ts(now_ms, i), "p" * 16, i))]
            for i in range(first, first + n)
        ],
    }


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_burst_of_gossip_messages_is_carried_out_as_one_ready_and_every_delta_lands(
    tmp_path: Path,
):
    async def run() -> tuple[int, dict[str, int], int]:
        node = InProcessNode(tmp_path)
        carried = []
        node.host.stepped = lambda: carried.append(1)
        try:
            for m in range(10):
                node.host.take_message(PEER, deltas_message(m * 5, 5))
            assert carried == []  # taken, not carried out yet: the loop's next turn does it
            await asyncio.sleep(0)
            readies = len(carried)
            await until(lambda: node.store.ns_stats("default")["entries"] == 50)
            return readies, node.committer.stats(), node.store.ns_stats("default")["entries"]
        finally:
            await node.close()

    readies, writer, entries = asyncio.run(run())
    assert readies == 1
    assert writer["ops"] == 50 and writer["max_batch"] == 50  # one batch of the 50 merges
    assert entries == 50
