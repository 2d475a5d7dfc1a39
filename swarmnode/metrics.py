"""Typed metrics of one node: counters, gauges and histograms, and their renderings.

One `Registry` per node (tests and the simulator run many nodes in one process, so
nothing here is global, and prometheus_client's default registry is never touched).
Each layer declares its metrics once, at construction, and keeps the objects it got:

    class Dissemination:
        def __init__(self, config, rng, metrics: Registry) -> None:
            self._sent = metrics.counter(
                "swarmnode_gossip_deltas_sent_total",
                "Deltas sent in gossip messages, retransmissions included.",
                stats=("dissemination", "deltas_sent"),
            )
            merges = metrics.counter(
                "swarmnode_merges_rejected_total",
                "Replicated states the store refused, by error code.",
                labels=("code",),
                stats=("counters", "merge_rejected_{code}"),
            )
            self._rejected_skew = merges.labels("clock_skew")   # bound once, off the hot path
            metrics.gauge(
                "swarmnode_gossip_pending_deltas",
                "Deltas waiting for retransmission.",
                fn=self.pending,                                # sampled when rendered
                stats=("dissemination", "pending"),
            )

        def _message(self, ...):
            self._sent.inc(len(chosen))                         # ~0.1 µs

One source, several renderings: `snapshot()` builds the nested dict of the `stats`
operation (each metric says where it sits in that tree, so the existing shape of
`stats` can be rendered from the registry), and `exposition()` the Prometheus text
format through prometheus_client (a custom collector yielding metric families,
rendered by `generate_latest`).

Names follow Prometheus conventions and are checked: the registry's prefix
(`swarmnode_`), snake case, the unit as a suffix (`_seconds`, `_bytes`), `_total`
on counters and only on counters. Labels are a fixed tuple of names per metric whose
values must stay few (an op, a namespace class, a peer state, an error code; never a
key or a peer id): each metric holds at most `max_series` label combinations and
refuses more, so a label misused for keys fails loudly instead of growing without
bound.

Thread rule. Every child (one metric, one combination of label values) is written by
one thread only: the thread that owns what it counts. The event loop owns what the
node, the protocols, the API server and the gossip endpoint count; the writer thread
owns what it counts about commits (batches, operations, fsync time); the vector
indexer thread its own. `+=` on a Python attribute is a read, an add and a write, so
two threads writing one child can lose increments; a quantity counted on several
threads gets a child per thread, or is handed to the owning thread. Rendering runs on
the event loop and only reads: reading a number is atomic under the GIL, function
gauges are sampled there (so they may read loop-owned state), and a histogram's count
is the sum of its bucket counts, so count and buckets always agree (its sum may lag
by the observation being made). `Registry(check_threads=True)`, for tests and the
simulator, makes every child remember the thread of its first write and raise
`RuntimeError` on a write from another.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any, ClassVar

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""`text/plain; version=0.0.4; charset=utf-8`: the text exposition format."""

LabelValues = tuple[str, ...]
StatsPath = tuple[str, ...]

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_LABEL = re.compile(r"[a-z_][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum", "_total")
DEFAULT_MAX_SERIES = 64

DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds, 100 µs to 10 s: a local operation, a commit, a round trip, a repair round."""


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """`count` bucket bounds from `start`, each `factor` times the previous one."""
    if start <= 0 or factor <= 1 or count < 1:
        raise ValueError("need start > 0, factor > 1 and count >= 1")
    return tuple(start * factor**i for i in range(count))


class _Child:
    """The value of one metric for one combination of label values."""

    __slots__ = ()

    def _check_thread(self) -> None:
        """Overridden by the thread-checking variants (`Registry(check_threads=True)`)."""


class CounterChild(_Child):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: float = 1) -> None:
        """Add `n` (>= 0): a counter only goes up."""
        if n < 0:
            raise ValueError(f"a counter only goes up; cannot add {n}")
        self.value += n


class GaugeChild(_Child):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, n: float = 1) -> None:
        self.value += n

    def dec(self, n: float = 1) -> None:
        self.value -= n


class HistogramChild(_Child):
    """Counts per bucket (not cumulative: the renderings accumulate) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(`le` bound, observations at or below it) pairs, "+Inf" last."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += n
            out.append((_le(bound), total))
        return out


def _checked(base: type[_Child], methods: tuple[str, ...]) -> type[_Child]:
    """A subclass of `base` whose writing methods raise when called from a second thread."""

    def wrap(name: str) -> Callable[..., None]:
        inner = getattr(base, name)

        def method(self: Any, *args: Any) -> None:
            me = threading.get_ident()
            if self.owner is None:
                self.owner = me
            elif self.owner != me:
                raise RuntimeError(
                    f"metric child written from thread {me}, but it belongs to thread "
                    f"{self.owner}: each child has one writer (see swarmnode.metrics)"
                )
            inner(self, *args)

        return method

    namespace: dict[str, Any] = {"__slots__": ("owner",)}
    namespace.update({name: wrap(name) for name in methods})
    cls = type(f"Checked{base.__name__}", (base,), namespace)
    original_init = base.__init__

    def init(self: Any, *args: Any) -> None:
        original_init(self, *args)
        self.owner = None

    cls.__init__ = init  # type: ignore[misc]
    return cls


_CHECKED = {
    CounterChild: _checked(CounterChild, ("inc",)),
    GaugeChild: _checked(GaugeChild, ("set", "inc", "dec")),
    HistogramChild: _checked(HistogramChild, ("observe",)),
}


class MetricFamily:
    """A metric: its name, help, label names, place in `stats`, and one child per label set."""

    kind: ClassVar[str] = ""
    child_type: ClassVar[type[_Child]] = _Child
    _direct: ClassVar[tuple[str, ...]] = ()
    """Writing methods an unlabelled metric takes straight from its only child."""

    def __init__(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...],
        stats: StatsPath | None,
        max_series: int,
        check_threads: bool,
        fn: Callable[[], float | Mapping[Any, float]] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.help = help
        self.labelnames = labels
        self.stats = stats
        self.max_series = max_series
        self._make = _CHECKED[self.child_type] if check_threads else self.child_type
        self._children: dict[LabelValues, Any] = {}
        self._only = self._child(()) if not labels else None
        if self._only is not None and self._writable():
            # An unlabelled metric's writing methods are its only child's, bound here:
            # one call per increment on the hot path instead of three.
            for method in self._direct:
                setattr(self, method, getattr(self._only, method))

    def _writable(self) -> bool:
        return self.fn is None

    def _new_child(self) -> Any:
        return self._make()

    def labels(self, *values: str) -> Any:
        """The child for these label values (in `labelnames` order), made on first use.

        Bind it once where a hot path needs it: the lookup costs more than the increment.
        """
        if self.fn is not None:
            raise ValueError(f"{self.name} is sampled from a function; it has no children")
        return self._child(values)

    def _child(self, values: LabelValues) -> Any:
        child = self._children.get(values)
        if child is not None:
            return child
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} has labels {self.labelnames}, got {values!r}")
        if any(type(v) is not str for v in values):
            raise TypeError(f"{self.name}: label values must be str, got {values!r}")
        if len(self._children) >= self.max_series:
            raise ValueError(
                f"{self.name}: more than {self.max_series} label combinations; labels take "
                "few values (an op, a state), never keys or ids"
            )
        child = self._children[values] = self._new_child()
        return child

    def _unlabelled(self) -> Any:
        if self._only is None:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels(...)")
        return self._only

    def children(self) -> list[tuple[LabelValues, Any]]:
        """(label values, child) of every series, in a stable order."""
        return sorted(self._children.items())

    def samples(self) -> list[tuple[LabelValues, Any]]:
        """What renderings show: (label values, value), sampled from `fn` if there is one.

        For a labelled metric, `fn` returns a mapping of label values (a tuple, or a plain
        string when there is one label) to numbers.
        """
        if self.fn is None:
            return [(values, child.value) for values, child in self.children()]
        sampled = self.fn()
        if not self.labelnames:
            return [((), sampled)]
        assert isinstance(sampled, Mapping), f"{self.name}: fn must return a mapping"
        out = []
        for key, value in sampled.items():
            values = (key,) if isinstance(key, str) else tuple(key)
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: fn gave label values {values!r}")
            out.append((values, value))
        if len(out) > self.max_series:
            raise ValueError(f"{self.name}: fn gave more than {self.max_series} series")
        return sorted(out)

    def _unlabelled_value(self) -> float:
        if self.fn is not None and not self.labelnames:
            return self.fn()  # type: ignore[return-value]
        return self._unlabelled().value

    def _family(self) -> Metric:
        raise NotImplementedError


class Counter(MetricFamily):
    """A count that only goes up: increased by its owner, or (with `fn`) read when rendered
    from a count another object keeps (a cache's hits, a replay window's evictions)."""

    kind = "counter"
    child_type = CounterChild
    _direct = ("inc",)

    def inc(self, n: float = 1) -> None:
        """Add `n` (>= 0) to an unlabelled counter."""
        if self.fn is not None:
            raise ValueError(f"{self.name} is sampled from a function; it cannot be increased")
        self._unlabelled().inc(n)

    @property
    def value(self) -> float:
        return self._unlabelled_value()

    def _family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
        for values, value in self.samples():
            family.add_metric(list(values), value)
        return family


class Gauge(MetricFamily):
    """A value that goes up and down: set by its owner, or sampled from `fn` when rendered."""

    kind = "gauge"
    child_type = GaugeChild
    _direct = ("set", "inc", "dec")

    def set(self, value: float) -> None:
        self._settable().set(value)

    def inc(self, n: float = 1) -> None:
        self._settable().inc(n)

    def dec(self, n: float = 1) -> None:
        self._settable().dec(n)

    def _settable(self) -> GaugeChild:
        if self.fn is not None:
            raise ValueError(f"{self.name} is sampled from a function; it cannot be set")
        return self._unlabelled()

    @property
    def value(self) -> float:
        return self._unlabelled_value()

    def _family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.help, labels=self.labelnames)
        for values, value in self.samples():
            family.add_metric(list(values), value)
        return family


class Histogram(MetricFamily):
    """Observations counted in fixed buckets (upper bounds, `+Inf` implied), with their sum."""

    kind = "histogram"
    child_type = HistogramChild
    _direct = ("observe",)

    def __init__(self, *args: Any, buckets: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise ValueError("histogram buckets must be finite numbers (+Inf is implied)")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError("histogram buckets must be strictly increasing")
        self.buckets = bounds
        super().__init__(*args)

    def _new_child(self) -> Any:
        return self._make(self.buckets)

    def observe(self, value: float) -> None:
        self._unlabelled().observe(value)

    def samples(self) -> list[tuple[LabelValues, Any]]:
        return [
            (values, {"count": child.count, "sum": child.sum, "buckets": child.cumulative()})
            for values, child in self.children()
        ]

    def _family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
        for values, sample in self.samples():
            family.add_metric(list(values), sample["buckets"], sample["sum"])
        return family


class Registry:
    """The metrics of one node. See the module docstring for names, labels and threads."""

    def __init__(self, prefix: str = "swarmnode_", *, check_threads: bool = False) -> None:
        self.prefix = prefix
        self.check_threads = check_threads
        self._metrics: dict[str, MetricFamily] = {}
        self._paths: dict[StatsPath, str] = {}
        self._exporter: CollectorRegistry | None = None

    # --- declaring ---------------------------------------------------------------

    def counter(
        self,
        name: str,
        help: str,
        *,
        labels: Sequence[str] = (),
        stats: StatsPath | None = None,
        fn: Callable[[], float | Mapping[Any, float]] | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Counter:
        """A counter, its name ending in `_total`; with `fn`, read from that when rendered."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: a counter's name ends in _total")
        return self._add(Counter(*self._common(name, help, labels, stats, max_series), fn=fn))

    def gauge(
        self,
        name: str,
        help: str,
        *,
        labels: Sequence[str] = (),
        stats: StatsPath | None = None,
        fn: Callable[[], float | Mapping[Any, float]] | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Gauge:
        """A gauge, set by its owner or (with `fn`) sampled when rendered."""
        self._not_total(name, "gauge")
        return self._add(Gauge(*self._common(name, help, labels, stats, max_series), fn=fn))

    def histogram(
        self,
        name: str,
        help: str,
        *,
        buckets: Sequence[float] = DURATION_BUCKETS,
        labels: Sequence[str] = (),
        stats: StatsPath | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Histogram:
        """A histogram with fixed bucket bounds (seconds by default: `DURATION_BUCKETS`)."""
        self._not_total(name, "histogram")
        if name.endswith(_HISTOGRAM_SUFFIXES):
            raise ValueError(f"histogram {name!r}: _bucket, _count and _sum are its samples")
        if "le" in labels:
            raise ValueError(f"histogram {name!r}: 'le' is the bucket label")
        common = self._common(name, help, labels, stats, max_series)
        return self._add(Histogram(*common, buckets=buckets))

    def _not_total(self, name: str, kind: str) -> None:
        if name.endswith("_total"):
            raise ValueError(f"{kind} {name!r}: only counters end in _total")

    def _common(
        self,
        name: str,
        help: str,
        labels: Sequence[str],
        stats: StatsPath | None,
        max_series: int,
    ) -> tuple[Any, ...]:
        if not _NAME.fullmatch(name) or not name.startswith(self.prefix):
            raise ValueError(f"metric {name!r}: snake case, starting with {self.prefix!r}")
        if name in self._metrics:
            raise ValueError(f"metric {name!r} is already declared")
        if not help.strip():
            raise ValueError(f"metric {name!r} needs help text")
        labels = tuple(labels)
        for label in labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"metric {name!r}: bad label name {label!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"metric {name!r}: repeated label names {labels}")
        if stats is not None:
            stats = tuple(stats)
            if not stats:
                raise ValueError(f"metric {name!r}: an empty stats path")
            used = {m for part in stats for m in _PLACEHOLDER.findall(part)}
            if not used <= set(labels):
                raise ValueError(f"metric {name!r}: stats path names unknown labels {used}")
            if stats in self._paths:
                raise ValueError(f"metric {name!r}: stats path {stats} is {self._paths[stats]}'s")
        if max_series < 1:
            raise ValueError(f"metric {name!r}: max_series must be at least 1")
        return name, help, labels, stats, max_series, self.check_threads

    def _add(self, metric: Any) -> Any:
        self._metrics[metric.name] = metric
        if metric.stats is not None:
            self._paths[metric.stats] = metric.name
        return metric

    # --- reading -----------------------------------------------------------------

    def __getitem__(self, name: str) -> MetricFamily:
        return self._metrics[name]

    def __contains__(self, name: str) -> bool:
        return name in self._metrics

    def metrics(self) -> list[MetricFamily]:
        """Every declared metric, in declaration order."""
        return list(self._metrics.values())

    def read(self, name: str, **labels: str) -> float | None:
        """The sum of a counter's or gauge's series whose labels match `labels` (all of
        them when none are given); None when no metric of that name is declared."""
        metric = self._metrics.get(name)
        if metric is None:
            return None
        if isinstance(metric, Histogram):
            raise TypeError(f"{name} is a histogram; read its samples()")
        at = [metric.labelnames.index(label) for label in labels]
        wanted = tuple(labels.values())
        return sum(
            value for values, value in metric.samples() if tuple(values[i] for i in at) == wanted
        )

    def snapshot(self, *within: str) -> dict[str, Any]:
        """The `stats` tree: every metric with a stats path, at its place.

        A path element `"x_{code}"` is filled with the label `code`; labels the path does
        not name add one level each, in label order. A path ending in a bare label
        (`("api", "errors", "{code}")`) renders `{}` there until the first series.
        Counters and gauges render as numbers, histograms as
        `{"count", "sum", "buckets": {le: cumulative count}}`.
        With `within` (a path prefix, e.g. `snapshot("transport")`), only the metrics
        under it are rendered, and the subtree at that prefix is returned.
        """
        tree: dict[str, Any] = {}
        depth = len(within)
        for metric in self._metrics.values():
            if metric.stats is None or metric.stats[:depth] != within:
                continue
            named = {m for part in metric.stats for m in _PLACEHOLDER.findall(part)}
            extra = [i for i, label in enumerate(metric.labelnames) if label not in named]
            samples = metric.samples()
            if not samples and _PLACEHOLDER.fullmatch(metric.stats[-1]):
                # A dict keyed by a label (errors by code) is shown empty before its first
                # series, so readers of `stats` find it whether or not anything happened.
                _place(tree, list(metric.stats[depth:-1]), {}, metric.name, exist_ok=True)
            for values, value in samples:
                bound = dict(zip(metric.labelnames, values, strict=True))
                path = [part.format(**bound) for part in metric.stats]
                path += [values[i] for i in extra]
                if isinstance(metric, Histogram):
                    value = {**value, "buckets": dict(value["buckets"])}
                _place(tree, path[depth:] if depth else path, value, metric.name)
        return tree

    def collect(self) -> Iterator[Metric]:
        """Prometheus metric families of every metric (prometheus_client's Collector API)."""
        for metric in self._metrics.values():
            yield metric._family()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (`CONTENT_TYPE`)."""
        if self._exporter is None:
            self._exporter = CollectorRegistry(auto_describe=False)
            self._exporter.register(self)  # type: ignore[arg-type]
        return generate_latest(self._exporter)


def merge_tree(into: dict[str, Any], more: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Add `more` to the nested dict `into` (in place, and returned): dicts are merged key
    by key; a key holding a value on both sides is a bug (two sources for one stat) and
    raises `ValueError`. For the parts of `stats` that are not metrics (ids, addresses,
    cache and shard descriptions), merged into the registry's `snapshot()`."""
    for key, value in more.items():
        here = into.get(key)
        if here is None:
            into[key] = value
        elif isinstance(here, dict) and isinstance(value, Mapping):
            merge_tree(here, value, f"{where}{key}.")
        else:
            raise ValueError(f"stats key {where}{key} comes from two sources")
    return into


def _place(
    tree: dict[str, Any], path: list[str], value: Any, name: str, *, exist_ok: bool = False
) -> None:
    if not path:
        return
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{name}: stats path {path} runs through a value")
        node = child
    if path[-1] in node:
        if exist_ok and isinstance(node[path[-1]], dict):
            return
        raise ValueError(f"{name}: stats path {path} is already taken")
    node[path[-1]] = value


def _le(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound))
