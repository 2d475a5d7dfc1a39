"""Dots and causal contexts: the bookkeeping that makes add-wins sets and
multi-value registers work with deltas.

A dot `(node, n)` names the n-th event of `node` on one entry. A causal context
is the set of dots a replica has seen, kept as a version vector (every dot up
to n of a node) plus a dot cloud for the dots seen out of order. Keeping the
cloud explicit is what makes it safe to join a delta whose causal predecessors
have not arrived yet: a gap is remembered as a gap instead of being papered
over by the vector, so a later arrival of the missing dots is not mistaken for
something already seen and removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Dot = tuple[str, int]


class CausalContext:
    """A set of dots, compacted into a version vector where contiguous."""

    __slots__ = ("cloud", "vv")

    def __init__(
        self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] | None = None
    ) -> None:
        self.vv: dict[str, int] = dict(vv) if vv else {}
        self.cloud: set[Dot] = set(cloud) if cloud else set()
        if self.cloud:
            self.compact()

    @classmethod
    def of(cls, dots: Iterable[Dot]) -> CausalContext:
        return cls(cloud=dots)

    def copy(self) -> CausalContext:
        cc = CausalContext()
        cc.vv = dict(self.vv)
        cc.cloud = set(self.cloud)
        return cc

    def __contains__(self, dot: Dot) -> bool:
        node, n = dot
        return n <= self.vv.get(node, 0) or dot in self.cloud

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CausalContext) and self.vv == other.vv and self.cloud == other.cloud
        )

    def __hash__(self) -> int:
        return hash((frozenset(self.vv.items()), frozenset(self.cloud)))

    def __repr__(self) -> str:
        return f"CausalContext(vv={self.vv!r}, cloud={sorted(self.cloud)!r})"

    def is_empty(self) -> bool:
        return not self.vv and not self.cloud

    def max_counter(self, node: str) -> int:
        top = self.vv.get(node, 0)
        for n_node, n in self.cloud:
            if n_node == node and n > top:
                top = n
        return top

    def next_dot(self, node: str) -> Dot:
        """The dot for `node`'s next event on this entry (never one already seen)."""
        return (node, self.max_counter(node) + 1)

    def add(self, dot: Dot) -> None:
        if dot not in self:
            self.cloud.add(dot)
            self.compact()

    def merge(self, other: CausalContext) -> None:
        """Join `other` into this context in place."""
        for node, n in other.vv.items():
            if n > self.vv.get(node, 0):
                self.vv[node] = n
        if other.cloud or self.cloud:
            self.cloud |= other.cloud
            self.compact()

    def join(self, other: CausalContext) -> CausalContext:
        out = self.copy()
        out.merge(other)
        return out

    def compact(self) -> None:
        """Fold cloud dots that extend or fall under the vector into it."""
        if not self.cloud:
            return
        keep: set[Dot] = set()
        for node, n in sorted(self.cloud):
            top = self.vv.get(node, 0)
            if n == top + 1:
                self.vv[node] = n
            elif n > top:
                keep.add((node, n))
        # Folding can close a gap that made an earlier-sorted dot look detached;
        # one more pass settles it because dots are processed in order per node.
        self.cloud = {d for d in keep if d[1] > self.vv.get(d[0], 0)}

    def dots(self) -> Iterator[Dot]:
        """Every dot in the context (the vector expanded); for tests and small contexts."""
        for node, top in self.vv.items():
            for n in range(1, top + 1):
                yield (node, n)
        yield from self.cloud

    def covers(self, other: CausalContext) -> bool:
        """True if every dot of `other` is in this context."""
        for node, n in other.vv.items():
            if n > self.vv.get(node, 0) and any(
                (node, i) not in self.cloud for i in range(self.vv.get(node, 0) + 1, n + 1)
            ):
                return False
        return all(d in self for d in other.cloud)
