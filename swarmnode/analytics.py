"""What the node has been doing: operation counts, hit ratios, latencies, replication lag.

Agents and operators ask "how busy is this memory, does it find what we look
for, how fast, how far behind are the peers" over the last 5 minutes, hour,
day or week. A node runs for months, so nothing here grows with uptime or with
what clients send: observations land in time buckets kept in two fixed rings
(one-minute buckets serve 5m and 1h, one-hour buckets serve 24h and 7d), and a
bucket that falls off its ring is reused. Within a bucket the number of
namespaces and of operation names is capped (the rest count as "(other)"), and
a latency histogram is a fixed array of log-scale buckets, so the whole object
has a bound that does not depend on the workload (see `AnalyticsConfig`).

Like the protocol cores, this keeps no clock: every call takes `now` (seconds
on the runtime's monotonic clock), which is what lets tests run it in virtual
time. `instrument` wraps the API server's dispatch to measure every request,
`lag_listener` measures how late replicated writes arrive, and `analytics_op`
is the `analytics` client operation.

Replication lag, as reported: for every change that arrived from a peer (gossip
delta or anti-entropy repair), the local wall-clock time when it was committed
here minus the wall-clock part of the entry's HLC timestamp, that is, the
writer's clock when the write was made. It includes gossip delay, repair delay
and the commit on this node; clock skew between hosts adds to or subtracts from
it (negative values count as 0), and a write that has not arrived yet is not in
it. Beside it: the age of the last successful anti-entropy round (what gossip
missed is repaired no later than the next round with the peer that has it) and
the deltas still queued for gossip.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swarmnode.crdt.hlc import wall_ms
from swarmnode.errors import BadRequest, SwarmError
from swarmnode.lazyimport import lazy_module
from swarmnode.metrics import Registry
from swarmnode.service.args import valid_name
from swarmnode.service.chain import Hooks, Next
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage.ops import Change

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

TIMEFRAMES: dict[str, float] = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0, "7d": 604800.0}
"""The windows `snapshot` answers for, in seconds."""

DEFAULT_TIMEFRAME = "1h"
OTHER = "(other)"
INVALID = "(invalid)"
NO_NAMESPACE = "-"
READ_OPS = frozenset({"get", "smembers", "search", "vsearch"})
"""Operations with a hit or a miss: found the key, or found at least one item."""

STARTED = "measure.started"
"""The `notes` entry where `measure` keeps when a request started."""

_OP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class LogScale:
    """Histogram buckets whose width grows geometrically, for values spanning decades.

    Bucket i holds values in [low * f**i, low * f**(i+1)) with f = 2 ** (1 /
    steps_per_doubling); values below `low` go to bucket 0 and values beyond the
    top to the last one. A percentile is reported as its bucket's geometric
    midpoint, so its relative error is at most f ** 0.5 - 1 (12% at 3 steps).
    """

    low: float
    steps_per_doubling: int
    buckets: int

    @property
    def factor(self) -> float:
        return 2.0 ** (1.0 / self.steps_per_doubling)

    @property
    def high(self) -> float:
        """The lower edge of the last bucket: values above it are only bounded by `max`."""
        return self.low * self.factor ** (self.buckets - 1)

    def index(self, value: float) -> int:
        if value <= self.low:
            return 0
        i = int(math.log2(value / self.low) * self.steps_per_doubling)
        return min(i, self.buckets - 1)

    def midpoint(self, index: int) -> float:
        return self.low * self.factor ** (index + 0.5)


@dataclass(frozen=True)
class AnalyticsConfig:
    """Resolution and memory bounds of the node's analytics.

    Memory bound: (fine_slots + coarse_slots) buckets, each at most
    (max_namespaces + 1) x (max_kinds + 1) counters and (max_kinds + 1) latency
    histograms of `latency.buckets` 4-byte counts, plus one lag histogram. With
    the defaults that is 230 buckets. Measured with tracemalloc: about 4 MB once
    a week of steady traffic of 20 operation kinds in 10 namespaces has filled
    every bucket, and about 20 MB in the worst case (every cap reached in every
    bucket).
    """

    fine_bucket_s: float = 60.0
    """Seconds per bucket of the ring that serves 5m and 1h. Smaller gives tighter windows
    (a window covers up to one bucket more than asked) and costs more buckets."""
    coarse_bucket_s: float = 3600.0
    """Seconds per bucket of the ring that serves 24h and 7d."""
    fine_span_s: float = 3600.0
    """Seconds. Timeframes up to this long are served by the fine ring, longer ones by the
    coarse ring."""
    max_namespaces: int = 32
    """Distinct namespaces counted per bucket; further ones count as "(other)". Raise it
    for swarms that spread traffic over many namespaces, at the cost of memory."""
    max_kinds: int = 48
    """Distinct operation names (and error codes) ever tracked; later ones count as
    "(other)". The node has about 25 operations; the margin absorbs clients sending
    unknown ones without letting them grow the tables."""
    latency: LogScale = LogScale(low=1e-5, steps_per_doubling=3, buckets=72)
    """Request latency buckets in seconds: 10 us up to about 170 s, 12% resolution."""
    lag: LogScale = LogScale(low=1e-3, steps_per_doubling=3, buckets=90)
    """Replication lag buckets in seconds: 1 ms up to about 12 days, 12% resolution."""
    sample_interval: float = 10.0
    """Seconds between two readings of the node's gossip and repair counters, which
    decide how precisely their traffic is split into buckets and how fresh the
    age of the last repair is. Lower costs a `stats` read more often."""

    def __post_init__(self) -> None:
        for name, seconds in TIMEFRAMES.items():
            width = self.bucket_s_for(seconds)
            if seconds % width:
                raise ValueError(f"timeframe {name} is not a whole number of {width:g}s buckets")

    def bucket_s_for(self, seconds: float) -> float:
        return self.fine_bucket_s if seconds <= self.fine_span_s else self.coarse_bucket_s

    @property
    def fine_slots(self) -> int:
        longest = max(s for s in TIMEFRAMES.values() if s <= self.fine_span_s)
        return math.ceil(longest / self.fine_bucket_s) + 1

    @property
    def coarse_slots(self) -> int:
        return math.ceil(max(TIMEFRAMES.values()) / self.coarse_bucket_s) + 1

    @classmethod
    def local(cls) -> AnalyticsConfig:
        """Counters read every second, so tests on one host see traffic promptly."""
        return cls(sample_interval=1.0)

    @classmethod
    def lan(cls) -> AnalyticsConfig:
        return cls()


class _Histogram:
    """One bucket's histogram. The counts are an `array` rather than numpy because this is
    on every request's path, and incrementing a numpy element costs several times more."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self, scale: LogScale) -> None:
        self.counts = array("I", bytes(4 * scale.buckets))
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, index: int, value: float) -> None:
        """Count `value`, which falls in bucket `index` of the histogram's scale."""
        self.counts[index] += 1
        self.count += 1
        self.total += value
        self.max = max(self.max, value)

    @classmethod
    def like(cls, other: _Histogram) -> _Histogram:
        """An empty histogram of `other`'s scale."""
        h = cls.__new__(cls)
        h.counts = array("I", bytes(4 * len(other.counts)))
        h.count, h.total, h.max = 0, 0.0, 0.0
        return h

    def absorb(self, other: _Histogram) -> None:
        """Add `other` (same scale) into this one."""
        counts = self.counts
        for i, n in enumerate(other.counts):
            if n:
                counts[i] += n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)


class _Merged:
    """Histograms of several buckets added up, and what is reported of them."""

    def __init__(self, scale: LogScale) -> None:
        self.scale = scale
        self.counts = np.zeros(scale.buckets, dtype=np.uint64)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, h: _Histogram) -> None:
        self.counts += np.frombuffer(h.counts, dtype=np.uint32)
        self.count += h.count
        self.total += h.total
        self.max = max(self.max, h.max)

    def quantile(self, q: float) -> float:
        rank = max(1, math.ceil(q * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        if index == self.scale.buckets - 1:
            return self.max  # the top bucket has no upper edge; the maximum is the honest bound
        return min(self.scale.midpoint(index), self.max)

    def summary_ms(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "mean": _ms(self.total / self.count),
            "p50": _ms(self.quantile(0.50)),
            "p90": _ms(self.quantile(0.90)),
            "p99": _ms(self.quantile(0.99)),
            "max": _ms(self.max),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class _Bucket:
    """Everything observed during one bucket's span."""

    __slots__ = (
        "errors",
        "index",
        "lag",
        "latency",
        "op_errors",
        "ops",
        "reads",
        "traffic",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.ops: dict[str, dict[str, int]] = {}
        self.errors: dict[str, int] = {}
        self.op_errors: dict[str, int] = {}
        self.reads: dict[str, list[int]] = {}
        self.latency: dict[str, _Histogram] = {}
        self.lag: _Histogram | None = None
        self.traffic: dict[str, float] = {}


class _Ring:
    """Fixed slots of equal-width buckets; a slot is reset when its bucket comes round again."""

    def __init__(self, bucket_s: float, slots: int) -> None:
        self.bucket_s = bucket_s
        self.slots: list[_Bucket | None] = [None] * slots
        self.head = -1
        self.current: _Bucket | None = None
        """The head bucket, and the span of `now` it takes (`start` <= now < `until`)."""
        self.start = self.until = 0.0

    def bucket(self, now: float) -> _Bucket:
        if self.start <= now < self.until:
            return self.current  # type: ignore[return-value]
        # A clock never goes back, but if a caller's does, its observation lands in the
        # newest bucket rather than resurrecting a reused slot.
        index = max(int(now // self.bucket_s), self.head)
        self.head = index
        slot = index % len(self.slots)
        b = self.slots[slot]
        if b is None or b.index != index:
            b = self.slots[slot] = _Bucket(index)
        self.current = b
        self.start, self.until = index * self.bucket_s, (index + 1) * self.bucket_s
        return b

    def window(self, now: float, seconds: float) -> tuple[list[_Bucket], float]:
        """The buckets of the current one and the `seconds` before it, and where they start."""
        current = max(int(now // self.bucket_s), self.head)
        first = current - round(seconds / self.bucket_s)
        found = [b for b in self.slots if b is not None and first <= b.index <= current]
        return found, first * self.bucket_s


def _merge(into: _Bucket, b: _Bucket, max_namespaces: int) -> None:
    """Add bucket `b` into `into` (namespaces past `max_namespaces` in `into` count as
    "(other)", as when recorded)."""
    for ns, kinds in b.ops.items():
        space = ns if ns in into.ops or len(into.ops) < max_namespaces else OTHER
        _add_counts(into.ops.setdefault(space, {}), kinds)
    _add_counts(into.errors, b.errors)
    _add_counts(into.op_errors, b.op_errors)
    for ns, (hits, misses) in b.reads.items():
        r = into.reads.setdefault(ns if ns in into.ops else OTHER, [0, 0])
        r[0] += hits
        r[1] += misses
    for kind, h in b.latency.items():
        mine = into.latency.get(kind)
        if mine is None:
            mine = into.latency[kind] = _Histogram.like(h)
        mine.absorb(h)
    if b.lag is not None:
        if into.lag is None:
            into.lag = _Histogram.like(b.lag)
        into.lag.absorb(b.lag)
    _add_counts(into.traffic, b.traffic)


class Analytics:
    """Bounded-memory counters and histograms over sliding windows; time comes in as `now`."""

    def __init__(self, config: AnalyticsConfig, now: float) -> None:
        self.config = config
        self.started_at = now
        self._rings = (
            _Ring(config.fine_bucket_s, config.fine_slots),
            _Ring(config.coarse_bucket_s, config.coarse_slots),
        )
        self._kinds: set[str] = set()
        self._counters: dict[str, float] | None = None
        self._sampled_at: float | None = None
        self._repaired_at: float | None = None

    # --- observations -------------------------------------------------------

    def record(
        self,
        now: float,
        op: str,
        ns: str,
        seconds: float,
        *,
        error: str | None = None,
        hit: bool | None = None,
    ) -> None:
        """One finished request: its op, namespace, latency, error code and read outcome."""
        kind = op if op in self._kinds else self._kind(op)
        b = self._bucket(now)
        per_ns = b.ops.get(ns)
        if per_ns is None:
            space = self._namespace(b, ns)
            per_ns = b.ops.setdefault(space, {})
        else:
            space = ns
        per_ns[kind] = per_ns.get(kind, 0) + 1
        hist = b.latency.get(kind)
        if hist is None:
            hist = b.latency[kind] = _Histogram(self.config.latency)
        hist.add(self.config.latency.index(seconds), seconds)
        if error is not None:
            code = self._kind(error)
            b.errors[code] = b.errors.get(code, 0) + 1
            b.op_errors[kind] = b.op_errors.get(kind, 0) + 1
        if hit is not None:
            reads = b.reads.get(space)
            if reads is None:
                reads = b.reads[space] = [0, 0]
            reads[0 if hit else 1] += 1

    def count(self, now: float, op: str, ns: str) -> None:
        """One finished request counted under its op and `ns` alone, without its latency,
        error or read outcome: for a view that reports only counts (operations per agent)."""
        kind = op if op in self._kinds else self._kind(op)
        b = self._bucket(now)
        per_ns = b.ops.get(ns)
        if per_ns is None:
            per_ns = b.ops.setdefault(self._namespace(b, ns), {})
        per_ns[kind] = per_ns.get(kind, 0) + 1

    def record_lag(self, now: float, seconds: float) -> None:
        """A replicated change committed here `seconds` after its writer made it."""
        seconds = max(0.0, seconds)
        b = self._bucket(now)
        if b.lag is None:
            b.lag = _Histogram(self.config.lag)
        b.lag.add(self.config.lag.index(seconds), seconds)

    def sample_due(self) -> float:
        """When `maybe_sample` next takes a sample (a runtime may sleep until then)."""
        if self._sampled_at is None:
            return float("-inf")
        return self._sampled_at + self.config.sample_interval

    def maybe_sample(self, now: float, read: Callable[[], Mapping[str, float]]) -> None:
        """`sample(now, read())` if `sample_interval` has passed since the last one."""
        if self._sampled_at is None or now - self._sampled_at >= self.config.sample_interval:
            self.sample(now, read())

    def sample(self, now: float, counters: Mapping[str, float]) -> None:
        """Readings of cumulative counters (see `gossip_counters`); their growth is bucketed.

        The first reading is the baseline. A counter that went down was reset,
        and its whole new value counts as growth.
        """
        previous = self._counters
        self._counters = dict(counters)
        self._sampled_at = now
        if previous is None:
            return
        b = self._bucket(now)
        for name, value in counters.items():
            grown = value - previous.get(name, 0)
            if grown < 0:
                grown = value
            if not grown:
                continue
            b.traffic[name] = b.traffic.get(name, 0) + grown
            if name == "repair.rounds_ok":
                self._repaired_at = now

    def _bucket(self, now: float) -> _Bucket:
        """The fine ring's bucket for `now`: observations land there only. A fine bucket
        is added into its coarse bucket once, when the fine ring moves past it, so every
        observation counts in both rings at half the cost of writing it twice."""
        fine = self._rings[0]
        if fine.start <= now < fine.until:
            return fine.current  # type: ignore[return-value]
        previous = fine.current
        b = fine.bucket(now)
        if previous is not None and previous is not b:
            self._fold(previous)
        return b

    def _fold(self, fine: _Bucket) -> None:
        """Add a finished fine bucket into the coarse bucket that holds its span."""
        coarse = self._rings[1].bucket(fine.index * self.config.fine_bucket_s)
        _merge(coarse, fine, self.config.max_namespaces)

    def _kind(self, name: str) -> str:
        if name in self._kinds:  # only valid names get in, so known ones skip the regex
            return name
        if not _OP_NAME.match(name):
            return INVALID
        if len(self._kinds) >= self.config.max_kinds:
            return OTHER
        self._kinds.add(name)
        return name

    def _namespace(self, b: _Bucket, ns: str) -> str:
        if ns in b.ops or len(b.ops) < self.config.max_namespaces:
            return ns
        return OTHER

    # --- reports ------------------------------------------------------------

    def snapshot(self, now: float, timeframe: str) -> dict[str, Any]:
        """What happened in the window ending at `now`; see docs of the `analytics` op.

        The window is the current bucket plus the whole buckets of the timeframe
        before it, so it covers at least the timeframe (once the node has run
        that long) and at most one bucket more; `seconds` says how much.
        """
        span = TIMEFRAMES.get(timeframe)
        if span is None:
            raise BadRequest(f"timeframe must be one of {', '.join(TIMEFRAMES)}, not {timeframe!r}")
        fine = span <= self.config.fine_span_s
        ring = self._rings[0] if fine else self._rings[1]
        buckets, start = ring.window(now, span)
        head = self._rings[0].current
        # The fine bucket under way is added into its coarse bucket only when done.
        if not fine and head is not None and head.index * self.config.fine_bucket_s >= start:
            buckets.append(head)
        by_kind: dict[str, int] = {}
        by_ns: dict[str, dict[str, int]] = {}
        errors: dict[str, int] = {}
        op_errors: dict[str, int] = {}
        reads: dict[str, list[int]] = {}
        latency: dict[str, _Merged] = {}
        everything = _Merged(self.config.latency)
        lag = _Merged(self.config.lag)
        traffic: dict[str, float] = {}
        for b in buckets:
            for ns, kinds in b.ops.items():
                _add_counts(by_kind, kinds)
                _add_counts(by_ns.setdefault(ns, {}), kinds)
            _add_counts(errors, b.errors)
            _add_counts(op_errors, b.op_errors)
            for ns, (hits, misses) in b.reads.items():
                r = reads.setdefault(ns, [0, 0])
                r[0] += hits
                r[1] += misses
            for kind, h in b.latency.items():
                merged = latency.get(kind)
                if merged is None:
                    merged = latency[kind] = _Merged(self.config.latency)
                merged.add(h)
                everything.add(h)
            if b.lag is not None:
                lag.add(b.lag)
            _add_counts(traffic, b.traffic)
        hits = sum(r[0] for r in reads.values())
        misses = sum(r[1] for r in reads.values())
        return {
            "timeframe": timeframe,
            "seconds": round(now - max(start, self.started_at), 3),
            "bucket_s": ring.bucket_s,
            "operations": {
                "total": sum(by_kind.values()),
                "by_kind": _sorted_desc(by_kind),
                "by_namespace": {ns: _sorted_desc(k) for ns, k in sorted(by_ns.items())},
            },
            "reads": {
                **_ratio(hits, misses),
                "by_namespace": {ns: _ratio(*r) for ns, r in sorted(reads.items())},
            },
            "errors": {
                "total": sum(errors.values()),
                "by_code": _sorted_desc(errors),
                "by_kind": _sorted_desc(op_errors),
            },
            "latency_ms": {
                "all": everything.summary_ms(),
                "by_kind": {k: m.summary_ms() for k, m in sorted(latency.items())},
            },
            "replication": {
                "lag_ms": lag.summary_ms(),
                "last_repair_age_s": (
                    None if self._repaired_at is None else round(now - self._repaired_at, 3)
                ),
            },
            "traffic": _grouped(traffic),
        }


def _add_counts(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _sorted_desc(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _ratio(hits: int, misses: int) -> dict[str, Any]:
    total = hits + misses
    return {
        "hits": hits,
        "misses": misses,
        "hit_ratio": round(hits / total, 4) if total else None,
    }


def _grouped(flat: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """{"gossip.deltas_sent": 3} -> {"gossip": {"deltas_sent": 3}}."""
    out: dict[str, dict[str, float]] = {}
    for name, value in sorted(flat.items()):
        group, _, counter = name.partition(".")
        out.setdefault(group, {})[counter] = value
    return out


# --- wiring into a node -------------------------------------------------------

_TRAFFIC: dict[str, tuple[str, dict[str, str]]] = {
    "gossip.deltas_sent": ("swarmnode_gossip_deltas_sent_total", {}),
    "gossip.deltas_received": ("swarmnode_gossip_deltas_received_total", {}),
    "gossip.messages_sent": ("swarmnode_gossip_messages_sent_total", {}),
    "gossip.bytes_sent": ("swarmnode_gossip_sent_bytes_total", {}),
    "gossip.deltas_dropped": ("swarmnode_gossip_deltas_dropped_total", {}),
    "repair.rounds_ok": ("swarmnode_repair_rounds_total", {"result": "ok"}),
    "repair.rounds_failed": ("swarmnode_repair_rounds_total", {"result": "failed"}),
    "repair.keys_repaired": ("swarmnode_repair_keys_total", {}),
    "repair.bytes_exchanged": ("swarmnode_repair_bytes_total", {}),
    "transport.datagrams_out": ("swarmnode_transport_datagrams_total", {"direction": "out"}),
    "transport.datagrams_in": ("swarmnode_transport_datagrams_total", {"direction": "in"}),
    "transport.bytes_out": ("swarmnode_transport_udp_bytes_total", {"direction": "out"}),
    "transport.bytes_in": ("swarmnode_transport_udp_bytes_total", {"direction": "in"}),
    "transport.stream_bytes_out": ("swarmnode_transport_stream_bytes_total", {"direction": "out"}),
    "transport.stream_bytes_in": ("swarmnode_transport_stream_bytes_total", {"direction": "in"}),
    "transport.dropped_auth": ("swarmnode_transport_dropped_total", {"reason": "auth"}),
    "transport.dropped_decode": ("swarmnode_transport_dropped_total", {"reason": "decode"}),
}
"""Traffic analytics buckets: its name, and the registry metric (and labels) it reads."""


def gossip_counters(metrics: Registry) -> dict[str, float]:
    """The node's cumulative traffic counters, read from its registry, flattened for `sample`.

    gossip.*: CRDT deltas by dissemination (`bytes_sent` counts delta payloads;
    `deltas_dropped` were pushed out of a full queue and left to repair);
    repair.*: anti-entropy rounds, including those `sync` started (keys and bytes
    both ways); transport.*: every datagram and stream byte of the gossip endpoint
    (SWIM, deltas and repair together, envelopes included). A metric the node
    does not have (no gossip endpoint) is left out.
    """
    out: dict[str, float] = {}
    for key, (name, labels) in _TRAFFIC.items():
        value = metrics.read(name, **labels)
        if value is not None:
            out[key] = value
    return out


def replication_gauges(metrics: Registry) -> dict[str, Any]:
    """The present state behind replication lag, read from the node's registry."""

    def read(name: str, **labels: str) -> float:
        return metrics.read(name, **labels) or 0

    return {
        "peers_alive": max(0, int(read("swarmnode_members", state="alive")) - 1),
        "peers_suspect": int(read("swarmnode_members", state="suspect")),
        "pending_deltas": int(read("swarmnode_gossip_pending_deltas")),
        "repairs_running": int(read("swarmnode_repair_rounds_active")),
    }


def _namespace_of(args: Any) -> str:
    ns = args.get("ns") if type(args) is dict else None
    if ns is None:
        return NO_NAMESPACE
    return ns if valid_name(ns) else INVALID


def _hit(op: str, result: Any) -> bool | None:
    """Whether a successful read found something (a miss of get and smembers is
    `not_found`); None for operations outside `READ_OPS`."""
    if op not in READ_OPS:
        return None
    if op in ("search", "vsearch"):
        return isinstance(result, dict) and bool(result.get("items"))
    return True


class Measure:
    """The `measure` step: every request's latency, namespace, outcome and hit or miss.

    The outermost step of the service chain, so refused requests count too. A
    read that fails with `not_found` is a miss; a search is a hit when it
    returns at least one item. For a stream (`watch`) the latency is the time
    to start it. Errors are counted by code; anything that is not a
    `SwarmError` is a bug and counts as `internal`. A request cancelled before
    it finished (its client went away) is not counted.

    Besides the analytics windows, every request counts in the node's registry:
    `swarmnode_requests_total{op,code}` (code `ok` for a success) and
    `swarmnode_request_duration_seconds{op}`. Their `op` label is an operation of
    the table or `(other)`, so what clients send cannot grow the series.
    """

    name = "measure"

    def __init__(
        self,
        analytics: Analytics,
        clock: Callable[[], float],
        metrics: Registry | None = None,
    ) -> None:
        self.analytics = analytics
        self.clock = clock
        m = metrics if metrics is not None else Registry()
        self._requests = m.counter(
            "swarmnode_requests_total",
            "Client requests finished, by operation and outcome (ok, or the error code).",
            labels=("op", "code"),
            max_series=2048,
        )
        self._durations = m.histogram(
            "swarmnode_request_duration_seconds",
            "Seconds from a request entering the service to its result (a stream's start).",
            labels=("op",),
            max_series=128,
        )
        self._bound: dict[tuple[str, str], tuple[Any, Any]] = {}

    def _series(self, op: str, code: str) -> tuple[Any, Any]:
        """The registry's series of a request's outcome, bound on first use."""
        bound = self._bound.get((op, code))
        if bound is None:
            bound = (self._requests.labels(op, code), self._durations.labels(op))
            self._bound[op, code] = bound
        return bound

    async def __call__(self, req: Request, nxt: Next) -> Any:
        self._start(req)
        try:
            result = await nxt(req)
        except Exception as exc:
            self._failed(req, exc)
            raise
        return self._done(req, result)

    def hooks(self, spec: OpSpec) -> Hooks:
        """A reading of the clock before the call, the records after it: inline."""
        return Hooks(enter=self._start, leave=self._done, fail=self._failed)

    def _start(self, req: Request) -> bool:
        req.notes[STARTED] = self.clock()
        return False

    def _done(self, req: Request, result: Any) -> Any:
        now = self.clock()
        seconds = now - req.notes[STARTED]
        op = req.op
        hit = _hit(op, result)
        self.analytics.record(now, op, _namespace_of(req.args), seconds, hit=hit)
        ok, duration = self._series(op if req.known else OTHER, "ok")
        ok.inc()
        duration.observe(seconds)
        return result

    def _failed(self, req: Request, exc: Exception) -> None:
        now = self.clock()
        seconds = now - req.notes[STARTED]
        op = req.op
        if isinstance(exc, SwarmError):
            code = exc.code
            miss = False if code == "not_found" and op in READ_OPS else None
        else:
            code, miss = "internal", None
        self.analytics.record(now, op, _namespace_of(req.args), seconds, error=code, hit=miss)
        count, duration = self._series(op if req.known else OTHER, code)
        count.inc()
        duration.observe(seconds)


def lag_listener(
    analytics: Analytics,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
) -> Callable[[Change], None]:
    """A node change listener that records the replication lag of every remote change.

    `clock` is the runtime's monotonic clock (the bucket), `wall_clock` seconds
    since the epoch, compared with the wall-clock part of the entry's HLC
    timestamp: the latest write the entry carries, as committed with the change.
    """

    def on_change(ch: Change) -> None:
        if ch.origin != "remote" or ch.entry is None:
            return
        analytics.record_lag(clock(), wall_clock() - wall_ms(ch.entry.ts) / 1000.0)

    return on_change


def analytics_op(
    analytics: Analytics,
    metrics: Registry,
    clock: Callable[[], float],
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """The executor of `analytics {timeframe?}` (5m, 1h (default), 24h, 7d).

    The node's traffic counters are read from its registry and sampled now, so
    the window's traffic is current, and its gauges (live peers, queued deltas,
    running repairs) join the replication section.
    """

    async def execute(req: Request) -> dict[str, Any]:
        now = clock()
        analytics.sample(now, gossip_counters(metrics))
        report = analytics.snapshot(now, req.args["timeframe"])
        report["replication"].update(replication_gauges(metrics))
        return report

    return execute


# --- rendering ----------------------------------------------------------------


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _fmt_pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def render_analytics(report: Mapping[str, Any]) -> str:
    """A readable rendering of an `analytics` result, for `swarmnode status`."""
    ops = report["operations"]
    reads = report["reads"]
    errors = report["errors"]
    latency = report["latency_ms"]
    lines = [
        f"analytics   last {report['timeframe']} ({report['seconds']:.0f}s covered, "
        f"{report['bucket_s']:g}s buckets): {ops['total']} operations, "
        f"{errors['total']} errors, reads {reads['hits']} hits / {reads['misses']} misses "
        f"({_fmt_pct(reads['hit_ratio'])})",
    ]
    if errors["by_code"]:
        lines.append(
            "errors      " + ", ".join(f"{code} {n}" for code, n in errors["by_code"].items())
        )
    if ops["by_kind"]:
        rows = []
        for kind, n in ops["by_kind"].items():
            lat = latency["by_kind"].get(kind, {})
            rows.append(
                [
                    kind,
                    str(n),
                    str(errors["by_kind"].get(kind, 0)),
                    _fmt_ms(lat.get("p50")),
                    _fmt_ms(lat.get("p90")),
                    _fmt_ms(lat.get("p99")),
                    _fmt_ms(lat.get("max")),
                ]
            )
        lines.append("")
        lines += _table(rows, ["OP", "COUNT", "ERRORS", "P50 MS", "P90 MS", "P99 MS", "MAX MS"])
    if ops["by_namespace"]:
        rows = []
        for ns, kinds in ops["by_namespace"].items():
            r = reads["by_namespace"].get(ns, {})
            top = ", ".join(f"{k} {n}" for k, n in list(kinds.items())[:4])
            rows.append(
                [
                    ns,
                    str(sum(kinds.values())),
                    str(r.get("hits", 0) + r.get("misses", 0)),
                    _fmt_pct(r.get("hit_ratio")),
                    top,
                ]
            )
        lines.append("")
        lines += _table(rows, ["NAMESPACE", "OPS", "READS", "HIT", "BUSIEST"])
    rep = report["replication"]
    lag = rep["lag_ms"]
    age = rep.get("last_repair_age_s")
    lag_text = (
        f"lag p50 {_fmt_ms(lag['p50'])} ms, p99 {_fmt_ms(lag['p99'])} ms, "
        f"max {_fmt_ms(lag['max'])} ms over {lag['count']} remote changes"
        if lag["count"]
        else "no remote changes"
    )
    lines += [
        "",
        f"replication {lag_text}; last repair "
        + ("never" if age is None else f"{age:.0f}s ago")
        + f"; {rep.get('peers_alive', 0)} peers alive, {rep.get('pending_deltas', 0)} deltas "
        "queued",
    ]
    t = report["traffic"]
    g, a, x = t.get("gossip", {}), t.get("repair", {}), t.get("transport", {})
    # The window's traffic, under its own heading: `swarmnode status` shows the totals
    # since start above it with the same words, and each label should appear once.
    lines += [
        f"traffic     in the last {report['timeframe']}:",
        f"  gossip    {g.get('deltas_sent', 0):.0f} deltas sent in {g.get('messages_sent', 0):.0f} "
        f"messages ({_fmt_bytes(g.get('bytes_sent', 0))}), {g.get('deltas_received', 0):.0f} "
        f"received, {g.get('deltas_dropped', 0):.0f} dropped",
        f"  repair    {a.get('rounds_ok', 0):.0f} rounds ok, {a.get('rounds_failed', 0):.0f} "
        f"failed, {a.get('keys_repaired', 0):.0f} keys repaired "
        f"({_fmt_bytes(a.get('bytes_exchanged', 0))})",
        f"  transport {x.get('datagrams_out', 0):.0f} datagrams out "
        f"({_fmt_bytes(x.get('bytes_out', 0))}), {x.get('datagrams_in', 0):.0f} in "
        f"({_fmt_bytes(x.get('bytes_in', 0))})",
    ]
    return "\n".join(lines)
