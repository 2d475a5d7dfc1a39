"""PN-counter with observed reset.

Each node owns two monotonic totals, its increments `p` and decrements `n`;
the value is the sum of the differences. Joins take pointwise maxima, so
deltas (a node's new totals) can arrive in any order, twice, or not at all
before a full state repairs them.

A reset (delete, or expiry followed by a new write) is NOT last-writer-wins:
it records the totals it observed as floors (`fp`, `fn`) and the value counts
only what lies above them. Increments the resetting node had not seen survive
the reset, exactly as a concurrent add survives a remove in an add-wins set.
A G-counter is the special case that never decrements or resets.

Expiry is a last-writer-wins register ordered by the writing timestamp: the
latest write's TTL decides when the counter expires (None: never), as a SET
with EX does in Redis. A reset carries no expiry of its own, so after a delete
the next write alone decides, and an old "never" cannot outlive the delete.
"""

from __future__ import annotations


def _max_merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    # A key present on either side stays, even at 0: dropping it on one side
    # only would make the join order-dependent ({a: 0} join {} != {} join {a: 0}).
    out = dict(a)
    for k, v in b.items():
        if k not in out or v > out[k]:
            out[k] = v
    return out


Expiry = tuple[int, int | None]
"""(timestamp of the write that set it, expiry in ms or None for never)."""

NO_EXPIRY: Expiry = (0, 0)
"""The bottom: no write has set an expiry ("expired since the epoch")."""


def join_expiry(a: Expiry, b: Expiry) -> Expiry:
    """The later write's expiry wins; at equal timestamps "never", then the later time."""
    return max(a, b, key=lambda e: (e[0], float("inf") if e[1] is None else e[1]))


class PNCounter:
    __slots__ = ("expires_at", "expiry_ts", "fn", "fp", "n", "p")

    def __init__(
        self,
        p: dict[str, int] | None = None,
        n: dict[str, int] | None = None,
        fp: dict[str, int] | None = None,
        fn: dict[str, int] | None = None,
        expires_at: int | None = 0,
        expiry_ts: int = 0,
    ) -> None:
        self.p = p or {}
        self.n = n or {}
        self.fp = fp or {}
        self.fn = fn or {}
        self.expires_at = expires_at
        self.expiry_ts = expiry_ts

    def value(self) -> int:
        total = 0
        for node, v in self.p.items():
            total += v - self.fp.get(node, 0)
        for node, v in self.n.items():
            total -= v - self.fn.get(node, 0)
        return total

    def live(self) -> bool:
        """True if any increment or decrement lies above the reset floors."""
        return any(v > self.fp.get(k, 0) for k, v in self.p.items()) or any(
            v > self.fn.get(k, 0) for k, v in self.n.items()
        )

    def visible(self, now_ms: int) -> bool:
        return self.live() and (self.expires_at is None or now_ms < self.expires_at)

    def increment(self, node: str, by: int, expires_at: int | None, ts: int = 0) -> PNCounter:
        """Delta adding `by` (negative to decrement) on behalf of `node`, written at `ts`."""
        if by >= 0:
            return PNCounter(
                p={node: self.p.get(node, 0) + by}, expires_at=expires_at, expiry_ts=ts
            )
        return PNCounter(n={node: self.n.get(node, 0) - by}, expires_at=expires_at, expiry_ts=ts)

    def reset(self) -> PNCounter:
        """Delta that zeroes everything this replica has observed, and nothing else."""
        return PNCounter(p=dict(self.p), n=dict(self.n), fp=dict(self.p), fn=dict(self.n))

    @property
    def expiry(self) -> Expiry:
        return (self.expiry_ts, self.expires_at)

    def join(self, other: PNCounter) -> PNCounter:
        ts, at = join_expiry(self.expiry, other.expiry)
        return PNCounter(
            _max_merge(self.p, other.p),
            _max_merge(self.n, other.n),
            _max_merge(self.fp, other.fp),
            _max_merge(self.fn, other.fn),
            at,
            ts,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and (
            self.p,
            self.n,
            self.fp,
            self.fn,
            self.expiry,
        ) == (other.p, other.n, other.fp, other.fn, other.expiry)

    def __hash__(self) -> int:
        return hash(self.value())

    def __repr__(self) -> str:
        return (
            f"PNCounter(value={self.value()}, p={self.p}, n={self.n}, fp={self.fp}, fn={self.fn})"
        )
