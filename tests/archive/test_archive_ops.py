"""Archive then restore, through the service: the same entries come back.

A node in the test's event loop with a wall clock the test moves: entries go
stale by moving the clock, never by sleeping.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from inprocess import InProcessNode

from swarmnode.errors import NotFound
from swarmnode.vectors.service import attach_vectors

DAY_MS = 86_400_000


class Clock:
    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
async def node(tmp_path: Path):
    clock = Clock()
    n = InProcessNode(tmp_path / "n", wall_ms=clock)
    n.clock = clock
    vectors = attach_vectors(n.host, n.service, tmp_path / "n", clock=clock)
    yield n
    await vectors.close()
    await n.close()


async def call(node, op: str, **args):
    return await node.service.call(op, args, None)


async def test_stale_entries_archived_come_back_with_values_metadata_and_vectors(node) -> None:
    await call(node, "ns_init", ns="notes", archive_after="1d", dim=3)
    written = {}
    for i in range(40):
        key = f"n{i:02d}"
        await call(
            node,
            "put",
            ns="notes",
            key=key,
            value={"text": f"note {i} " * 10},
            meta={"i": i},
            vector=[1.0, float(i), 0.5],
        )
        written[key] = await call(node, "get", ns="notes", key=key, vector=True)
    await call(node, "incr", ns="notes", key="counter", by=9)
    await call(node, "sadd", ns="notes", key="tags", members=["a", "b", "c"])
    node.clock.ms += 2 * DAY_MS
    await call(node, "get", ns="notes", key="n05")  # read: stays live

    report = await call(node, "compact")
    archived = report["archive"]
    assert archived["entries"] == 41 and archived["compression_ratio"] > 1
    with pytest.raises(NotFound):
        await call(node, "get", ns="notes", key="n01")
    listed = await call(node, "archive_list", ns="notes", limit=1000)
    assert {i["key"] for i in listed["items"]} == (set(written) - {"n05"}) | {"counter", "tags"}
    peek = await call(node, "archive_get", ns="notes", key="n01", vector=True)
    assert peek["value"] == written["n01"]["value"] and peek["reason"] == "stale"
    hits = await call(node, "vsearch", ns="notes", vector=[1.0, 1.0, 0.5], k=5)
    assert [h["key"] for h in hits["items"]] == ["n05"]

    restored = await call(node, "archive_restore", ns="notes", prefix="")
    assert restored["restored"] == 41
    for key, before in written.items():
        assert await call(node, "get", ns="notes", key=key, vector=True) == before
    assert (await call(node, "get", ns="notes", key="counter"))["value"] == 9
    assert (await call(node, "smembers", ns="notes", key="tags"))["members"] == ["a", "b", "c"]
    assert (await call(node, "archive_list", ns="notes"))["items"] == []


async def test_entries_that_expire_are_kept_where_the_namespace_opts_in(node) -> None:
    await call(node, "ns_init", ns="events", archive_expired=True)
    await call(node, "put", ns="events", key="e1", value="happened", meta={"k": 1}, ttl=60)
    await call(node, "put", ns="plain", key="e1", value="gone", ttl=60)
    node.clock.ms += 120_000
    report = await call(node, "compact")
    assert report["archive"]["namespaces"] == {
        "events": {
            "entries": 1,
            "bytes": report["archive"]["bytes"],
            "compressed_bytes": report["archive"]["compressed_bytes"],
        }
    }
    [item] = (await call(node, "archive_list", ns="events"))["items"]
    assert item["reason"] == "expired"
    await call(node, "archive_restore", ns="events", key="e1")
    back = await call(node, "get", ns="events", key="e1")
    assert back["value"] == "happened" and back["meta"] == {"k": 1}
    assert back["expires_at"] - back["updated_ms"] == 60_000
