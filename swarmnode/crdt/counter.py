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

Expiry is a max-register: every write extends it to its own timestamp plus
TTL, and the latest extension wins everywhere (None means never).
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


def join_expiry(a: int | None, b: int | None) -> int | None:
    """Later expiry wins; None (never expires) beats any time."""
    if a is None or b is None:
        return None
    return max(a, b)


class PNCounter:
    __slots__ = ("expires_at", "fn", "fp", "n", "p")

    def __init__(
        self,
        p: dict[str, int] | None = None,
        n: dict[str, int] | None = None,
        fp: dict[str, int] | None = None,
        fn: dict[str, int] | None = None,
        expires_at: int | None = 0,
    ) -> None:
        self.p = p or {}
        self.n = n or {}
        self.fp = fp or {}
        self.fn = fn or {}
        # 0 is the bottom of the expiry max-register: "expired since the epoch".
        # It is only ever seen on reset deltas, which carry no expiry of their own.
        self.expires_at = expires_at

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

    def increment(self, node: str, by: int, expires_at: int | None) -> PNCounter:
        """Delta adding `by` (negative to decrement) on behalf of `node`."""
        if by >= 0:
            return PNCounter(p={node: self.p.get(node, 0) + by}, expires_at=expires_at)
        return PNCounter(n={node: self.n.get(node, 0) - by}, expires_at=expires_at)

    def reset(self) -> PNCounter:
        """Delta that zeroes everything this replica has observed, and nothing else."""
        return PNCounter(p=dict(self.p), n=dict(self.n), fp=dict(self.p), fn=dict(self.n))

    def join(self, other: PNCounter) -> PNCounter:
        return PNCounter(
            _max_merge(self.p, other.p),
            _max_merge(self.n, other.n),
            _max_merge(self.fp, other.fp),
            _max_merge(self.fn, other.fn),
            join_expiry(self.expires_at, other.expires_at),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and (
            self.p,
            self.n,
            self.fp,
            self.fn,
            self.expires_at,
        ) == (other.p, other.n, other.fp, other.fn, other.expires_at)

    def __hash__(self) -> int:
        return hash(self.value())

    def __repr__(self) -> str:
        return (
            f"PNCounter(value={self.value()}, p={self.p}, n={self.n}, fp={self.fp}, fn={self.fn})"
        )
