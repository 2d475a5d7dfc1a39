"""The metrics registry: typed metrics, checked names and labels, one source for every rendering."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from swarmnode.metrics import DURATION_BUCKETS, Registry, exponential_buckets


def parsed(registry: Registry) -> dict[str, dict[tuple, float]]:
    """sample name -> {sorted label items: value} from the registry's text exposition."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(registry.exposition().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_a_counter_only_goes_up():
    counter = Registry().counter("swarmnode_writes_total", "Writes.")
    counter.inc()
    counter.inc(4)
    counter.inc(0)
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1)
    assert counter.value == 5


def test_a_gauge_is_set_or_sampled_when_rendered():
    registry = Registry()
    gauge = registry.gauge("swarmnode_queue_depth", "Depth.", stats=("q", "depth"))
    gauge.set(7)
    gauge.inc(2)
    gauge.dec()
    assert gauge.value == 8
    queue = [1, 2, 3]
    sampled = registry.gauge("swarmnode_queue_items", "Items.", fn=lambda: len(queue))
    queue.append(4)
    assert sampled.value == 4
    with pytest.raises(ValueError, match="sampled from a function"):
        sampled.set(1)
    assert registry.snapshot() == {"q": {"depth": 8}}


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200))
def test_a_histogram_counts_every_observation_in_the_first_bucket_that_holds_it(values):
    registry = Registry()
    bounds = (0.5, 1.0, 10.0)
    histogram = registry.histogram("swarmnode_sizes_bytes", "Sizes.", buckets=bounds)
    for v in values:
        histogram.observe(v)
    [(_, sample)] = histogram.samples()
    assert sample["count"] == len(values)
    assert sample["sum"] == pytest.approx(sum(values))
    expected = [sum(1 for v in values if v <= b) for b in bounds] + [len(values)]
    assert [n for _, n in sample["buckets"]] == expected
    assert [le for le, _ in sample["buckets"]] == ["0.5", "1.0", "10.0", "+Inf"]


@pytest.mark.parametrize(
    "declare, message",
    [
        (lambda r: r.counter("swarmnode_writes", "x"), "ends in _total"),
        (lambda r: r.gauge("swarmnode_writes_total", "x"), "only counters end in _total"),
        (lambda r: r.counter("writes_total", "x"), "starting with 'swarmnode_'"),
        (lambda r: r.counter("swarmnode_Writes_total", "x"), "snake case"),
        (lambda r: r.counter("swarmnode_writes_total", " "), "needs help"),
        (lambda r: r.counter("swarmnode_w_total", "x", labels=("a", "a")), "repeated"),
        (lambda r: r.counter("swarmnode_w_total", "x", labels=("__a",)), "bad label"),
        (lambda r: r.histogram("swarmnode_h_seconds", "x", labels=("le",)), "bucket label"),
        (lambda r: r.histogram("swarmnode_h_count", "x"), "are its samples"),
        (lambda r: r.histogram("swarmnode_h_seconds", "x", buckets=(2, 1)), "increasing"),
        (lambda r: r.histogram("swarmnode_h_seconds", "x", buckets=()), "finite"),
        (lambda r: r.counter("swarmnode_w_total", "x", stats=("a", "{op}")), "unknown labels"),
    ],
)
def test_names_labels_and_buckets_are_checked_when_declared(declare, message):
    with pytest.raises(ValueError, match=message):
        declare(Registry())


def test_a_name_or_a_stats_path_is_declared_once():
    registry = Registry()
    registry.counter("swarmnode_a_total", "a", stats=("x", "a"))
    with pytest.raises(ValueError, match="already declared"):
        registry.counter("swarmnode_a_total", "a")
    with pytest.raises(ValueError, match="stats path"):
        registry.counter("swarmnode_b_total", "b", stats=("x", "a"))


def test_labels_are_bounded_and_never_open_ended():
    registry = Registry()
    by_op = registry.counter("swarmnode_ops_total", "Ops.", labels=("op",), max_series=3)
    for op in ("get", "put", "del"):
        by_op.labels(op).inc()
    assert by_op.labels("get") is by_op.labels("get")
    with pytest.raises(ValueError, match="never keys"):
        by_op.labels("user:42")
    with pytest.raises(ValueError, match="labels"):
        by_op.inc()
    with pytest.raises(ValueError, match="has labels"):
        by_op.labels("get", "extra")
    with pytest.raises(TypeError, match="must be str"):
        registry.counter("swarmnode_x_total", "x", labels=("n",)).labels(3)


def test_the_stats_tree_is_rendered_in_the_existing_shape():
    registry = Registry()
    registry.counter(
        "swarmnode_gossip_deltas_sent_total", "Deltas sent.", stats=("dissemination", "deltas_sent")
    ).inc(12)
    registry.gauge(
        "swarmnode_gossip_pending_deltas",
        "Pending.",
        fn=lambda: 3,
        stats=("dissemination", "pending"),
    )
    rejected = registry.counter(
        "swarmnode_merges_rejected_total",
        "Rejected merges.",
        labels=("code",),
        stats=("counters", "merge_rejected_{code}"),
    )
    rejected.labels("clock_skew").inc(2)
    rejected.labels("too_large").inc()
    registry.gauge(
        "swarmnode_members",
        "Members.",
        labels=("state",),
        stats=("members",),
        fn=lambda: {"alive": 4, "dead": 1},
    )
    registry.counter("swarmnode_unlisted_total", "Not in stats.").inc()
    assert registry.snapshot() == {
        "dissemination": {"deltas_sent": 12, "pending": 3},
        "counters": {"merge_rejected_clock_skew": 2, "merge_rejected_too_large": 1},
        "members": {"alive": 4, "dead": 1},
    }


def test_labels_the_path_does_not_name_nest_below_it():
    registry = Registry()
    requests = registry.counter(
        "swarmnode_requests_total", "Requests.", labels=("op", "outcome"), stats=("api", "requests")
    )
    requests.labels("get", "ok").inc(3)
    requests.labels("get", "not_found").inc()
    latency = registry.histogram(
        "swarmnode_request_duration_seconds",
        "Latency.",
        labels=("op",),
        buckets=(0.001, 0.01),
        stats=("api", "latency_{op}"),
    )
    latency.labels("get").observe(0.005)
    assert registry.snapshot() == {
        "api": {
            "requests": {"get": {"ok": 3, "not_found": 1}},
            "latency_get": {
                "count": 1,
                "sum": 0.005,
                "buckets": {"0.001": 0, "0.01": 1, "+Inf": 1},
            },
        }
    }


def test_the_prometheus_exposition_round_trips_every_kind_with_labels():
    registry = Registry()
    registry.counter("swarmnode_gossip_datagrams_sent_total", "Datagrams sent.").inc(5)
    by_state = registry.gauge(
        "swarmnode_members",
        "Members by state.",
        labels=("state",),
        fn=lambda: {"alive": 2, "suspect": 1},
    )
    assert by_state.labelnames == ("state",)
    latency = registry.histogram(
        "swarmnode_request_duration_seconds", "Latency.", labels=("op",), buckets=(0.001, 0.1)
    )
    latency.labels("get").observe(0.0005)
    latency.labels("get").observe(0.05)
    latency.labels("put").observe(3.0)
    samples = parsed(registry)
    assert samples["swarmnode_gossip_datagrams_sent_total"] == {(): 5.0}
    assert samples["swarmnode_members"] == {
        (("state", "alive"),): 2.0,
        (("state", "suspect"),): 1.0,
    }
    buckets = samples["swarmnode_request_duration_seconds_bucket"]
    assert buckets[(("le", "0.001"), ("op", "get"))] == 1.0
    assert buckets[(("le", "0.1"), ("op", "get"))] == 2.0
    assert buckets[(("le", "+Inf"), ("op", "get"))] == 2.0
    assert buckets[(("le", "0.1"), ("op", "put"))] == 0.0
    assert buckets[(("le", "+Inf"), ("op", "put"))] == 1.0
    assert samples["swarmnode_request_duration_seconds_count"][(("op", "put"),)] == 1.0
    assert samples["swarmnode_request_duration_seconds_sum"][(("op", "get"),)] == pytest.approx(
        0.0505
    )
    families = {f.name: f for f in text_string_to_metric_families(registry.exposition().decode())}
    assert families["swarmnode_gossip_datagrams_sent"].type == "counter"
    assert families["swarmnode_members"].type == "gauge"
    assert families["swarmnode_request_duration_seconds"].type == "histogram"
    assert families["swarmnode_members"].documentation == "Members by state."


def test_registries_are_independent():
    first, second = Registry(), Registry()
    first.counter("swarmnode_writes_total", "Writes.").inc(3)
    second.counter("swarmnode_writes_total", "Writes.").inc(1)
    assert parsed(first)["swarmnode_writes_total"] == {(): 3.0}
    assert parsed(second)["swarmnode_writes_total"] == {(): 1.0}


def test_with_thread_checks_a_child_written_from_a_second_thread_is_refused():
    registry = Registry(check_threads=True)
    counter = registry.counter("swarmnode_commits_total", "Commits.")
    histogram = registry.histogram("swarmnode_commit_seconds", "Commit time.")
    counter.inc()
    histogram.observe(0.01)
    errors: list[BaseException] = []

    def other_thread() -> None:
        for write in (counter.inc, lambda: histogram.observe(0.02)):
            try:
                write()
            except RuntimeError as exc:
                errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 2 and "one writer" in str(errors[0])
    assert counter.value == 1
    # Each thread may own children of its own.
    per_thread = registry.counter("swarmnode_ops_total", "Ops.", labels=("thread",))
    per_thread.labels("loop").inc()
    worker = threading.Thread(target=lambda: per_thread.labels("writer").inc())
    worker.start()
    worker.join()
    assert dict(per_thread.samples()) == {("loop",): 1, ("writer",): 1}


def test_bucket_helpers():
    assert exponential_buckets(1, 2, 4) == (1, 2, 4, 8)
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
    with pytest.raises(ValueError):
        exponential_buckets(0, 2, 3)
