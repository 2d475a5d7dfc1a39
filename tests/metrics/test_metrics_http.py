"""The /metrics endpoint over a real socket, read back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmnode.metrics import Registry
from swarmnode.runtime.metrics_http import MetricsConfig, MetricsServer
from swarmnode.settings import ConfigError

WAIT = 30.0
"""Seconds any answer may take on a loaded machine; never a sleep, only an upper bound."""


def node_registry() -> tuple[Registry, dict]:
    registry = Registry()
    state = {"members": {"alive": 3, "suspect": 1}}
    registry.counter("swarmnode_gossip_datagrams_sent_total", "Datagrams sent.").inc(7)
    requests = registry.counter(
        "swarmnode_requests_total", "Requests by op and outcome.", labels=("op", "outcome")
    )
    requests.labels("get", "ok").inc(5)
    requests.labels("get", "not_found").inc(2)
    registry.gauge(
        "swarmnode_members", "Members by state.", labels=("state",), fn=lambda: state["members"]
    )
    latency = registry.histogram(
        "swarmnode_request_duration_seconds", "Request latency.", labels=("op",), buckets=(0.01, 1)
    )
    latency.labels("get").observe(0.002)
    latency.labels("put").observe(0.5)
    return registry, state


async def request(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n".encode()


@pytest.fixture
async def served():
    registry, state = node_registry()
    config = MetricsConfig(bind="127.0.0.1:0", read_timeout=0.5)
    async with MetricsServer(registry.exposition, config) as server:
        yield server, registry, state


async def test_metrics_round_trip_through_the_text_format(served):
    server, registry, state = served
    status, headers, body = await request(server.address, get("/metrics"))
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["swarmnode_gossip_datagrams_sent"].type == "counter"
    [sent] = families["swarmnode_gossip_datagrams_sent"].samples
    assert (sent.name, sent.value) == ("swarmnode_gossip_datagrams_sent_total", 7.0)
    requests = {
        (s.labels["op"], s.labels["outcome"]): s.value
        for s in families["swarmnode_requests"].samples
    }
    assert requests == {("get", "ok"): 5.0, ("get", "not_found"): 2.0}
    members = {s.labels["state"]: s.value for s in families["swarmnode_members"].samples}
    assert members == {"alive": 3.0, "suspect": 1.0}
    hist = families["swarmnode_request_duration_seconds"]
    assert hist.type == "histogram"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in hist.samples}
    assert got[("swarmnode_request_duration_seconds_bucket", (("le", "0.01"), ("op", "get")))] == 1
    assert got[("swarmnode_request_duration_seconds_bucket", (("le", "0.01"), ("op", "put")))] == 0
    assert got[("swarmnode_request_duration_seconds_bucket", (("le", "1.0"), ("op", "put")))] == 1
    assert got[("swarmnode_request_duration_seconds_count", (("op", "put"),))] == 1
    assert got[("swarmnode_request_duration_seconds_sum", (("op", "get"),))] == 0.002

    # Every scrape renders the registry as it is now.
    registry["swarmnode_gossip_datagrams_sent_total"].inc(3)
    state["members"] = {"alive": 4}
    _, _, body = await request(server.address, get("/metrics?x=1"))
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["swarmnode_gossip_datagrams_sent"].samples[0].value == 10
    assert [(s.labels, s.value) for s in families["swarmnode_members"].samples] == [
        ({"state": "alive"}, 4.0)
    ]
    assert server.stats["scrapes"] == 2


async def test_head_answers_without_a_body(served):
    server, _, _ = served
    status, headers, body = await request(server.address, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    "raw, status",
    [
        (get("/"), 404),
        (get("/metrics/x"), 404),
        (get("/favicon.ico"), 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"hello there\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
async def test_anything_but_a_scrape_gets_an_error_status(served, raw, status):
    server, _, _ = served
    got, headers, _ = await request(server.address, raw)
    assert got == status
    assert headers["Connection"] == "close"
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"


async def test_a_client_that_never_finishes_its_request_is_cut_off(served):
    server, _, _ = served
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()
    assert server.stats["cut_off"] == 1


async def test_connections_beyond_the_bound_are_closed_at_once():
    registry, _ = node_registry()
    config = MetricsConfig(bind="127.0.0.1:0", max_connections=2, read_timeout=120.0)
    async with MetricsServer(registry.exposition, config) as server:
        idle = [await asyncio.open_connection(*server.address) for _ in range(2)]
        reader, writer = await asyncio.open_connection(*server.address)
        # Closed without an answer long before the idle ones' read timeout.
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        assert server.stats["refused"] == 1
        for _, w in [*idle, (reader, writer)]:
            w.close()


def test_a_non_loopback_bind_needs_allow_remote():
    with pytest.raises(ConfigError, match=r"^\[metrics\] bind = \"0\.0\.0\.0:9117\": not a loop"):
        MetricsConfig(bind="0.0.0.0:9117")
    with pytest.raises(ConfigError, match="IP address"):
        MetricsConfig(bind="metrics.example:9117")
    assert MetricsConfig(bind="0.0.0.0:9117", allow_remote=True).address == ("0.0.0.0", 9117)
    assert MetricsConfig(bind="127.0.0.1").address == ("127.0.0.1", 9117)
    assert MetricsConfig().address is None
    with pytest.raises(ValueError, match="off"):
        MetricsServer(Registry().exposition, MetricsConfig())


async def test_a_remote_bind_serves_when_allowed():
    registry, _ = node_registry()
    config = MetricsConfig(bind="0.0.0.0:0", allow_remote=True)
    async with MetricsServer(registry.exposition, config) as server:
        status, _, _ = await request(("127.0.0.1", server.address[1]), get("/metrics"))
        assert status == 200


async def test_a_failing_render_is_a_500_and_the_server_keeps_serving():
    calls = []

    def render() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a gauge function broke")
        return b"# nothing\n"

    async with MetricsServer(render, MetricsConfig(bind="127.0.0.1:0")) as server:
        assert (await request(server.address, get("/metrics")))[0] == 500
        assert (await request(server.address, get("/metrics")))[0] == 200
