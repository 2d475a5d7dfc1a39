"""Two real nodes on loopback: vectors put on node A are found by vsearch on node B.

Both nodes are the real runtime (`NodeProcess`: UDP gossip, Unix-socket API,
group-commit writer thread, the vector layer it attaches) in this test's event
loop, reached through the real asyncio client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from swarmnode.client import AsyncClient, Client
from swarmnode.config import Config
from swarmnode.errors import BadRequest
from swarmnode.runtime import real
from swarmnode.vectors.cli import add_vsearch_arguments, render_vsearch, run_vsearch

from .brute import assert_same, brute_force

DEADLINE = 60.0


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[real.NodeProcess]:
    process = real.NodeProcess(config)
    task = asyncio.create_task(process.run())
    ready = asyncio.create_task(process.ready.wait())
    await asyncio.wait({task, ready}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert process.ready.is_set(), "node did not get ready"
    try:
        yield process
    finally:
        process.stop()
        await asyncio.wait_for(task, DEADLINE)


async def test_vectors_put_on_one_node_are_searchable_on_another() -> None:
    root = Path(tempfile.mkdtemp(prefix="snv-", dir="/tmp"))
    try:
        cfg_a = Config.for_profile("local", data_dir=root / "a", bind=("127.0.0.1", 0))
        async with running(cfg_a) as a:
            cfg_b = Config.for_profile(
                "local", data_dir=root / "b", bind=("127.0.0.1", 0), join=[a.endpoint.address]
            )
            async with running(cfg_b) as b:
                await replicate_and_search(a, b)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def replicate_and_search(a: real.NodeProcess, b: real.NodeProcess) -> None:
    rng = np.random.default_rng(0)
    live = {f"k{i}": rng.normal(size=16).astype(np.float32) for i in range(40)}
    async with AsyncClient(a.config.socket_path) as ca, AsyncClient(b.config.socket_path) as cb:
        await ca.ns_init("docs", dim=16, metric="cosine")
        for key, v in live.items():
            await ca.put("docs", key, {"key": key}, vector=v, meta={"half": int(key[1:]) % 2})
        await ca.delete("docs", "k3")
        del live["k3"]
        q = rng.normal(size=16).astype(np.float32)
        expected = brute_force(live, q, "cosine", 5)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            try:
                reply = await cb.vsearch("docs", q, k=len(live) + 1)
                if {i["key"] for i in reply["items"]} == set(live):
                    break
            except BadRequest as exc:  # the namespace may not have reached B yet
                if "no vector dimension" not in str(exc):
                    raise
            assert loop.time() < deadline, "replicated vectors never became searchable on B"
            await asyncio.sleep(0.1)
        reply = await cb.vsearch("docs", q, k=5)
        assert_same(reply, expected)
        odd = {k: v for k, v in live.items() if int(k[1:]) % 2}
        reply = await cb.vsearch("docs", q, k=5, filter={"half": 1})
        assert_same(reply, brute_force(odd, q, "cosine", 5))
        # Many queries in one request, a numpy array of them through the socket.
        queries = np.stack([q, live["k7"], rng.normal(size=16).astype(np.float32)])
        batch = await cb.vsearch_many("docs", queries, k=5, filter={"half": 1})
        for query, result in zip(queries, batch["results"], strict=True):
            assert_same(result, brute_force(odd, query, "cosine", 5))
    # The command line, through the blocking client.
    parser = argparse.ArgumentParser()
    add_vsearch_arguments(parser)
    args = parser.parse_args(["docs", "--key", "k7", "-k", "3", "--filter", '{"half": 1}'])

    def command() -> tuple[dict, str]:
        with Client(b.config.socket_path) as c:
            r = run_vsearch(c, args)
        return r, render_vsearch(r)

    reply, text = await asyncio.to_thread(command)
    assert_same(reply, brute_force(odd, live["k7"], "cosine", 3))
    assert text.splitlines()[1].split()[:3] == ["1", "1.0000", "k7"]
    assert text.splitlines()[-1] == "# cosine: higher is better (exact search)"
