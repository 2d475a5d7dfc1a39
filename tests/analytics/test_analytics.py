"""Node analytics in virtual time: windows, percentiles, caps, sampled traffic, the wrappers."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swarmnode.analytics import (
    Analytics,
    AnalyticsConfig,
    Measure,
    analytics_op,
    gossip_counters,
    lag_listener,
    render_analytics,
)
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import RequestContext
from swarmnode.crdt.hlc import wall_ms
from swarmnode.errors import BadRequest, NotFound, SwarmError
from swarmnode.membership.config import MembershipConfig
from swarmnode.membership.swim import Membership
from swarmnode.metrics import Registry
from swarmnode.replication.dissemination import Dissemination, DisseminationConfig
from swarmnode.service.chain import Service
from swarmnode.service.steps import Validate
from swarmnode.service.table import TABLE, OpSpec, Request
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Merge, Put
from swarmnode.transport.config import TransportConfig
from swarmnode.transport.endpoint import GossipEndpoint

CTX = RequestContext(connection_id=1, request_id=1, limits=ApiLimits())


def fresh(now: float = 0.0, **config: Any) -> Analytics:
    return Analytics(AnalyticsConfig(**config), now)


def op_count(a: Analytics, now: float, timeframe: str) -> int:
    return a.snapshot(now, timeframe)["operations"]["total"]


# --- windows ------------------------------------------------------------------


def test_a_window_holds_what_happened_within_it_and_forgets_older_buckets() -> None:
    a = fresh()
    a.record(10.0, "put", "tasks", 0.001)
    a.record(400.0, "get", "tasks", 0.001, hit=True)
    assert op_count(a, 400.0, "5m") == 1
    assert op_count(a, 400.0, "1h") == 2
    assert op_count(a, 400.0 + 3600.0, "1h") == 1
    assert op_count(a, 400.0 + 3660.0, "1h") == 0
    assert op_count(a, 400.0 + 3660.0, "24h") == 2
    report = a.snapshot(400.0, "5m")
    assert report["seconds"] == 340.0 and report["bucket_s"] == 60.0


@pytest.mark.parametrize(("timeframe", "span"), [("5m", 300), ("1h", 3600), ("24h", 86400)])
def test_a_window_always_covers_at_least_its_timeframe(timeframe: str, span: float) -> None:
    rng = random.Random(7)
    a = fresh()
    for _ in range(200):
        then = rng.uniform(0, 10 * span)
        a.record(then, "get", "ns", 0.001)
        assert op_count(a, then + rng.uniform(0, span), timeframe) >= 1
        a = fresh(then)


def test_seconds_covered_start_when_the_node_started() -> None:
    a = fresh(now=1000.0)
    assert a.snapshot(1030.0, "1h")["seconds"] == 30.0


def test_an_unknown_timeframe_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="5m, 1h, 24h, 7d"):
        fresh().snapshot(0.0, "2w")


def test_memory_stays_bounded_however_long_the_node_runs() -> None:
    a = fresh()
    minute = 0

    def run(days: int) -> None:
        nonlocal minute
        for _ in range(days * 24 * 60):
            now = minute * 60.0
            a.record(now, "put", f"ns{minute % 5}", 0.002)
            a.record(now, "get", f"ns{minute % 5}", 0.0005, hit=minute % 3 > 0)
            a.record_lag(now, 0.05)
            minute += 1

    tracemalloc.start()
    try:
        run(8)
        after_8_days = tracemalloc.get_traced_memory()[0]
        run(8)
        after_16_days = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_16_days < after_8_days * 1.05
    assert op_count(a, (minute - 1) * 60.0, "7d") == 2 * (7 * 24 + 1) * 60


# --- what a window reports ----------------------------------------------------


def test_latency_percentiles_are_within_the_histogram_resolution() -> None:
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=np.log(0.002), sigma=1.0, size=20_000)
    a = fresh()
    for s in samples:
        a.record(5.0, "get", "ns", float(s))
    lat = a.snapshot(5.0, "5m")["latency_ms"]["by_kind"]["get"]
    exact = np.quantile(samples, [0.5, 0.9, 0.99]) * 1000
    for reported, true in zip((lat["p50"], lat["p90"], lat["p99"]), exact, strict=True):
        assert abs(reported - true) / true < 0.13
    assert lat["max"] == round(samples.max() * 1000, 3)
    assert lat["mean"] == pytest.approx(samples.mean() * 1000, rel=1e-3)
    assert lat["count"] == 20_000


def test_latency_beyond_the_scale_is_capped_by_the_true_maximum() -> None:
    a = fresh()
    a.record(1.0, "compact", "-", 900.0)
    a.record(1.0, "ping", "-", 0.0)
    lat = a.snapshot(1.0, "5m")["latency_ms"]
    assert lat["by_kind"]["compact"]["p99"] == lat["by_kind"]["compact"]["max"] == 900_000.0
    assert lat["by_kind"]["ping"]["p50"] == 0.0
    assert lat["all"]["count"] == 2


def test_operations_hits_and_errors_by_namespace_and_kind() -> None:
    a = fresh()
    for _ in range(3):
        a.record(1.0, "get", "tasks", 0.001, hit=True)
    a.record(1.0, "get", "tasks", 0.001, error="not_found", hit=False)
    a.record(1.0, "put", "tasks", 0.001)
    a.record(1.0, "put", "swarm", 0.001, error="too_large")
    a.record(1.0, "stats", "-", 0.001)
    r = a.snapshot(1.0, "1h")
    assert r["operations"]["total"] == 7
    assert r["operations"]["by_kind"] == {"get": 4, "put": 2, "stats": 1}
    assert r["operations"]["by_namespace"]["tasks"] == {"get": 4, "put": 1}
    assert r["reads"]["by_namespace"] == {"tasks": {"hits": 3, "misses": 1, "hit_ratio": 0.75}}
    assert (r["reads"]["hits"], r["reads"]["misses"], r["reads"]["hit_ratio"]) == (3, 1, 0.75)
    assert r["errors"] == {
        "total": 2,
        "by_code": {"not_found": 1, "too_large": 1},
        "by_kind": {"get": 1, "put": 1},
    }


def test_the_long_windows_see_every_observation_of_the_fine_buckets_they_cover() -> None:
    """Observations are written into the fine ring and added into the coarse one as each
    fine bucket ends; a 24h or 7d window sees them all, the bucket under way included."""
    a = fresh()
    rng = random.Random(7)
    now, expected = 0.0, {"get": 0, "put": 0}
    hits = misses = 0
    for _ in range(2000):
        now += rng.uniform(0.0, 10.0)
        op = rng.choice(["get", "put"])
        hit = rng.random() < 0.7 if op == "get" else None
        a.record(now, op, rng.choice(["a", "b"]), rng.uniform(1e-5, 1.0), hit=hit)
        a.record_lag(now, 0.01)
        expected[op] += 1
        hits += hit is True
        misses += hit is False
        if rng.random() < 0.01:
            for timeframe in ("24h", "7d"):
                r = a.snapshot(now, timeframe)
                assert r["operations"]["by_kind"] == {k: n for k, n in expected.items() if n}
                assert r["latency_ms"]["all"]["count"] == sum(expected.values())
                assert (r["reads"]["hits"], r["reads"]["misses"]) == (hits, misses)
                assert r["replication"]["lag_ms"]["count"] == sum(expected.values())
    assert now > 2 * 3600  # several coarse buckets, many fine ones


def test_a_count_is_an_operation_of_its_namespace_and_nothing_more() -> None:
    """What the per-agent view keeps: counts in every window, no latency, errors or reads."""
    a = fresh()
    a.count(1.0, "get", "agent-a")
    a.count(1.0, "get", "agent-a")
    a.count(400.0, "put", "agent-b")
    r = a.snapshot(400.0, "1h")
    assert r["operations"]["by_namespace"] == {"agent-a": {"get": 2}, "agent-b": {"put": 1}}
    assert a.snapshot(400.0, "5m")["operations"]["by_namespace"] == {"agent-b": {"put": 1}}
    assert r["latency_ms"]["all"] == {"count": 0}
    assert r["errors"]["total"] == 0 and r["reads"]["by_namespace"] == {}


def test_no_reads_means_no_hit_ratio_rather_than_zero() -> None:
    a = fresh()
    a.record(1.0, "put", "tasks", 0.001)
    assert a.snapshot(1.0, "5m")["reads"]["hit_ratio"] is None


def test_namespaces_beyond_the_cap_are_counted_as_other() -> None:
    a = fresh(max_namespaces=2)
    for ns in ("a", "b", "c", "d"):
        a.record(1.0, "put", ns, 0.001, hit=True)
    r = a.snapshot(1.0, "5m")
    assert r["operations"]["by_namespace"] == {
        "(other)": {"put": 2},
        "a": {"put": 1},
        "b": {"put": 1},
    }
    assert r["reads"]["by_namespace"]["(other)"]["hits"] == 2
    a.record(61.0, "put", "d", 0.001)
    assert "d" in a.snapshot(61.0, "5m")["operations"]["by_namespace"]


def test_operation_names_are_capped_and_garbage_is_invalid() -> None:
    a = fresh(max_kinds=3)
    for op in ("get", "put", "stats", "zzz1", "zzz2"):
        a.record(1.0, op, "-", 0.001)
    a.record(1.0, "x" * 10_000, "-", 0.001, error="bad_request")
    a.record(1.0, "DROP TABLE", "-", 0.001, error="bad_request")
    kinds = a.snapshot(1.0, "5m")["operations"]["by_kind"]
    assert kinds == {"(invalid)": 2, "(other)": 2, "get": 1, "put": 1, "stats": 1}


# --- sampled traffic and replication ------------------------------------------


def test_traffic_is_the_growth_of_sampled_counters_inside_the_window() -> None:
    a = fresh()
    a.sample(0.0, {"gossip.deltas_sent": 100, "repair.rounds_ok": 4})
    a.sample(60.0, {"gossip.deltas_sent": 150, "repair.rounds_ok": 4})
    a.sample(400.0, {"gossip.deltas_sent": 170, "repair.rounds_ok": 5})
    assert a.snapshot(400.0, "5m")["traffic"] == {
        "gossip": {"deltas_sent": 70},
        "repair": {"rounds_ok": 1},
    }
    assert a.snapshot(430.0, "5m")["traffic"]["gossip"] == {"deltas_sent": 20}
    assert a.snapshot(430.0, "1h")["traffic"]["gossip"] == {"deltas_sent": 70}


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    a = fresh()
    a.sample(0.0, {"transport.bytes_out": 5000})
    a.sample(10.0, {"transport.bytes_out": 300})
    assert a.snapshot(10.0, "5m")["traffic"] == {"transport": {"bytes_out": 300}}


def test_last_repair_age_follows_the_last_successful_round() -> None:
    a = fresh()
    assert a.snapshot(0.0, "5m")["replication"]["last_repair_age_s"] is None
    a.sample(0.0, {"repair.rounds_ok": 0})
    a.sample(20.0, {"repair.rounds_ok": 2})
    a.sample(30.0, {"repair.rounds_ok": 2, "repair.rounds_failed": 1})
    assert a.snapshot(45.0, "5m")["replication"]["last_repair_age_s"] == 25.0


def test_counters_are_read_no_more_often_than_the_sample_interval() -> None:
    a = Analytics(AnalyticsConfig.local(), 0.0)
    reads: list[float] = []

    def read() -> dict[str, float]:
        reads.append(now)
        return {"gossip.deltas_sent": len(reads)}

    for tick in range(100):
        now = tick * 0.1
        a.maybe_sample(now, read)
    assert reads == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])


def test_replication_lag_percentiles_with_skew_below_zero_counted_as_zero() -> None:
    a = fresh()
    for ms in range(1, 101):
        a.record_lag(2.0, ms / 1000.0)
    a.record_lag(2.0, -0.5)
    lag = a.snapshot(2.0, "5m")["replication"]["lag_ms"]
    assert lag["count"] == 101
    assert 44 < lag["p50"] < 56 and 88 < lag["p99"] <= 100 and lag["max"] == 100.0


def gossiping_registry() -> tuple[Registry, Dissemination]:
    """The metrics of a node's real dissemination, membership and (unstarted) endpoint."""
    registry = Registry(check_threads=True)
    rng = random.Random(7)
    gossip = Dissemination(DisseminationConfig(), rng, registry)
    Membership("a" * 16, ("127.0.0.1", 7000), MembershipConfig(), rng, metrics=registry)
    GossipEndpoint(("127.0.0.1", 0), None, TransportConfig(), lambda *_: None, metrics=registry)
    return registry, gossip


def test_gossip_counters_read_the_cores_metrics_from_the_registry() -> None:
    registry, gossip = gossiping_registry()
    for i in range(3):
        gossip.enqueue("tasks", f"k{i}", b"x" * 10)
    peers = [("127.0.0.1", 7001), ("127.0.0.1", 7002)]
    gossip.tick(0.0, peers)
    counters = gossip_counters(registry)
    sent = gossip.stats
    assert sent["deltas_sent"] > 0
    assert counters["gossip.deltas_sent"] == sent["deltas_sent"]
    assert counters["gossip.messages_sent"] == sent["messages_sent"]
    assert counters["gossip.bytes_sent"] == sent["bytes_sent"]
    transport = {k: v for k, v in counters.items() if k.startswith("transport.")}
    assert len(transport) == 8 and set(transport.values()) == {0}
    # No anti-entropy in this registry: its counters are left out, not reported as 0.
    assert not any(k.startswith("repair.") for k in counters)


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a, b = Store(tmp_path / "a", StoreConfig()), Store(tmp_path / "b", StoreConfig())
    yield a, b
    a.close()
    b.close()


def test_lag_of_a_replicated_write_is_its_arrival_time_minus_its_write_time(
    two_stores: tuple[Store, Store],
) -> None:
    writer, replica = two_stores
    written_ms = 1_800_000_000_000
    (put,) = writer.apply([Put("tasks", "t1", "v")], written_ms)
    delta = put.changes[0].delta
    assert delta is not None
    (merged,) = replica.apply([Merge("tasks", "t1", delta, full=False)], written_ms + 250)
    (local,) = replica.apply([Put("tasks", "t2", "v")], written_ms + 260)
    a = fresh()
    listen = lag_listener(a, lambda: 5.0, lambda: (written_ms + 250) / 1000.0)
    for change in merged.changes + local.changes:
        listen(change)
    lag = a.snapshot(5.0, "5m")["replication"]["lag_ms"]
    assert lag["count"] == 1 and lag["max"] == 250.0
    assert wall_ms(replica.get("tasks", "t1").ts) == written_ms


# --- the measure step and the analytics op ---------------------------------------


class VirtualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def measured_service(
    a: Analytics, clock: VirtualClock, execute: Any, metrics: Registry | None = None
) -> Service:
    """A service whose every operation runs `execute(op, args)`, behind the measure step."""
    table = {name: OpSpec(name, "", (), "") for name in ("get", "search", "put", "ping", "crash")}
    service = Service(table)

    def bind(name: str) -> Any:
        async def run(req: Request) -> Any:
            return await execute(name, req.args)

        return run

    for name in table:
        service.register(name, bind(name))
    service.use(Measure(a, clock, metrics))
    return service


async def test_the_measure_step_times_every_request_and_tells_hits_from_misses() -> None:
    clock = VirtualClock()

    async def execute(op: str, args: dict[str, Any]) -> Any:
        clock.now += args.get("takes", 0.004)
        if op == "get" and args["key"] == "missing":
            raise NotFound("'missing' not found")
        if op == "search":
            return {"items": [{"key": "k"}] if args["pattern"] == "k" else []}
        if op == "crash":
            raise RuntimeError("bug")
        return {"ok": True}

    a = Analytics(AnalyticsConfig(), clock.now)
    service = measured_service(a, clock, execute)
    assert await service.call("get", {"ns": "tasks", "key": "k"}, CTX) == {"ok": True}
    with pytest.raises(NotFound):
        await service.call("get", {"ns": "tasks", "key": "missing"}, CTX)
    await service.call("search", {"pattern": "k"}, CTX)
    await service.call("search", {"pattern": "nothing"}, CTX)
    await service.call("put", {"ns": "tasks", "key": "k", "takes": 0.25}, CTX)
    await service.call("ping", {}, CTX)
    await service.call("put", {"ns": "not a namespace!"}, CTX)
    with pytest.raises(RuntimeError):
        await service.call("crash", {}, CTX)
    with pytest.raises(BadRequest, match="unknown operation"):
        await service.call("nonsense", {}, CTX)
    r = a.snapshot(clock.now, "5m")
    assert r["operations"]["by_namespace"] == {
        "(invalid)": {"put": 1},
        "-": {"search": 2, "crash": 1, "ping": 1, "nonsense": 1},
        "tasks": {"get": 2, "put": 1},
    }
    assert r["reads"]["by_namespace"]["tasks"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5}
    assert r["reads"]["by_namespace"]["-"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5}
    assert r["errors"]["by_code"] == {"bad_request": 1, "internal": 1, "not_found": 1}
    assert r["latency_ms"]["by_kind"]["put"]["max"] == 250.0
    assert r["latency_ms"]["by_kind"]["get"]["p50"] == pytest.approx(4.0, rel=0.13)


async def test_the_measure_step_counts_requests_by_op_and_code_in_the_registry() -> None:
    clock = VirtualClock()

    async def execute(op: str, args: dict[str, Any]) -> Any:
        clock.now += args.get("takes", 0.004)
        if args.get("key") == "missing":
            raise NotFound("'missing' not found")
        return {"ok": True}

    registry = Registry(check_threads=True)
    service = measured_service(Analytics(AnalyticsConfig(), clock.now), clock, execute, registry)
    await service.call("put", {"ns": "tasks", "key": "k", "takes": 0.3}, CTX)
    await service.call("get", {"ns": "tasks", "key": "k"}, CTX)
    with pytest.raises(NotFound):
        await service.call("get", {"ns": "tasks", "key": "missing"}, CTX)
    # Names clients make up all count as one "(other)" series, whatever they are.
    for i in range(200):
        with pytest.raises(BadRequest):
            await service.call(f"made-up-{i}", {}, CTX)
    requests = dict(registry["swarmnode_requests_total"].samples())
    assert requests == {
        ("(other)", "bad_request"): 200,
        ("get", "not_found"): 1,
        ("get", "ok"): 1,
        ("put", "ok"): 1,
    }
    durations = dict(registry["swarmnode_request_duration_seconds"].samples())
    assert set(durations) == {("(other)",), ("get",), ("put",)}
    put = durations[("put",)]
    assert put["count"] == 1 and put["sum"] == pytest.approx(0.3)
    assert dict(put["buckets"])["0.25"] == 0 and dict(put["buckets"])["0.5"] == 1


async def test_a_request_cancelled_before_it_finished_is_not_counted() -> None:
    clock = VirtualClock()
    started = asyncio.Event()

    async def execute(op: str, args: dict[str, Any]) -> Any:
        started.set()
        await asyncio.Event().wait()

    a = Analytics(AnalyticsConfig(), clock.now)
    service = measured_service(a, clock, execute)
    task = asyncio.create_task(service.call("get", {"ns": "t"}, CTX))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert op_count(a, clock.now, "5m") == 0


async def test_the_analytics_op_adds_live_replication_state_and_current_traffic() -> None:
    clock = VirtualClock()
    registry, gossip = gossiping_registry()
    a = Analytics(AnalyticsConfig(), clock.now)
    a.sample(clock.now, gossip_counters(registry))
    service = analytics_service(a, registry, clock)
    clock.now += 30
    gossip.enqueue("tasks", "k", b"v")
    gossip.enqueue("tasks", "j", b"w")
    gossip.tick(clock.now, [("127.0.0.1", 7001)])
    report = await service.call("analytics", {"timeframe": "5m"}, CTX)
    assert report["replication"] == {
        "lag_ms": {"count": 0},
        "last_repair_age_s": None,
        "peers_alive": 0,
        "peers_suspect": 0,
        "pending_deltas": gossip.pending(),
        "repairs_running": 0,
    }
    assert gossip.pending() == 2
    assert report["traffic"]["gossip"] == {
        "deltas_sent": 2,
        "messages_sent": 1,
        "bytes_sent": gossip.stats["bytes_sent"],
    }
    # Absent and null both mean the default, as for every other optional argument.
    assert (await service.call("analytics", {}, CTX))["timeframe"] == "1h"
    assert (await service.call("analytics", {"timeframe": None}, CTX))["timeframe"] == "1h"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"timeframe": "1y"}, "'timeframe' must be one of 5m, 1h, 24h, 7d"),
        ({"timeframe": 5}, "'timeframe' must be a string"),
        ({"window": "5m"}, "unknown argument(s) window"),
    ],
)
async def test_the_analytics_op_refuses_bad_arguments(args: dict[str, Any], message: str) -> None:
    a = Analytics(AnalyticsConfig(), 0.0)
    service = analytics_service(a, Registry(), lambda: 0.0)
    with pytest.raises(SwarmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await service.call("analytics", args, CTX)


def analytics_service(a: Analytics, metrics: Registry, clock: Any) -> Service:
    """The analytics op as a node serves it: behind the validate step, on an empty store."""
    service = Service({"analytics": TABLE["analytics"]})
    service.register("analytics", analytics_op(a, metrics, clock))
    service.use(Validate(_EMPTY_STORE))
    return service


class _EmptyStore:
    catalog = Catalog.of({}, {}, 0)


_EMPTY_STORE: Any = _EmptyStore()


def test_the_readable_rendering_shows_the_numbers_an_operator_looks_for() -> None:
    a = fresh()
    a.sample(0.0, {"gossip.deltas_sent": 10, "transport.bytes_out": 2048})
    for _ in range(9):
        a.record(10.0, "get", "tasks", 0.002, hit=True)
    a.record(10.0, "get", "tasks", 0.002, error="not_found", hit=False)
    a.record_lag(10.0, 0.03)
    a.sample(10.0, {"gossip.deltas_sent": 10, "transport.bytes_out": 4096})
    report = a.snapshot(10.0, "1h")
    report["replication"].update(peers_alive=2, pending_deltas=4)
    text = render_analytics(report)
    assert "10 operations, 1 errors, reads 9 hits / 1 misses (90.0%)" in text
    assert "errors      not_found 1" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("OP "))
    assert lines[header + 1].split() == ["get", "10", "1", "1.81", "1.81", "1.81", "2"]
    assert "lag p50 28.5 ms" in text and "2 peers alive, 4 deltas queued" in text
    assert "(2.0 KB)" in text
