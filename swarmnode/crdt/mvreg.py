"""Multi-value register: concurrent writes survive side by side as siblings.

A write supersedes exactly the versions its writer had seen (their dots go
into the delta's causal context) and nothing else, so two writes that did not
see each other both remain until a later write that saw both replaces them.
This is what namespaces with policy `mv` and `consensus` store.

A delete is a causal context without a value: it removes the versions it saw.
Against a concurrent write, the write survives (the delete never saw its dot).
"""

from __future__ import annotations

from typing import Any

import msgpack

from swarmnode.crdt.causal import CausalContext, Dot
from swarmnode.crdt.dotkernel import join_dot_map


class Version:
    """One sibling: a written value with its metadata, vector, timestamp, expiry and the
    agent that wrote it (None: written without an agent identity)."""

    __slots__ = ("agent", "expires_at", "meta", "ts", "value", "vector")

    def __init__(
        self,
        value: Any,
        ts: int,
        meta: dict[str, Any] | None = None,
        vector: bytes | None = None,
        expires_at: int | None = None,
        agent: str | None = None,
    ) -> None:
        self.value = value
        self.ts = ts
        self.meta = meta
        self.vector = vector
        self.expires_at = expires_at
        self.agent = agent

    def fields(self) -> tuple[Any, ...]:
        base = (self.value, self.ts, self.meta, self.vector, self.expires_at)
        return base if self.agent is None else (*base, self.agent)

    def order_key(self) -> bytes:
        """The version's bytes: equality and the reused-dot tie-break go by what is on the wire.

        Python's == would call 1, 1.0 and True equal and NaN unequal to itself,
        which the encoding does not; comparing bytes keeps `==` and the codec in step.
        """
        return msgpack.packb(self.fields())

    def visible(self, now_ms: int) -> bool:
        return self.expires_at is None or now_ms < self.expires_at

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and (
            self is other or self.order_key() == other.order_key()
        )

    def __hash__(self) -> int:
        return hash((self.ts, self.expires_at))

    def __repr__(self) -> str:
        return f"Version({self.value!r}, ts={self.ts})"


def _later_version(a: Version, b: Version) -> Version:
    # Two versions under one reused dot: the larger bytes win on every replica,
    # the same tie-break the LWW register uses for a reused (timestamp, node).
    if a is b:
        return a
    return a if a.order_key() >= b.order_key() else b


class MVRegister:
    __slots__ = ("cc", "versions")

    def __init__(
        self, versions: dict[Dot, Version] | None = None, cc: CausalContext | None = None
    ) -> None:
        self.versions: dict[Dot, Version] = versions if versions is not None else {}
        self.cc = cc if cc is not None else CausalContext()

    def write(self, node: str, version: Version) -> MVRegister:
        """Delta of a write by `node` that supersedes every version this replica holds."""
        dot = self.cc.next_dot(node)
        seen = CausalContext.of([*self.versions, dot])
        return MVRegister({dot: version}, seen)

    def clear(self) -> MVRegister:
        """Delta of a delete: removes exactly the versions this replica holds."""
        return MVRegister({}, CausalContext.of(self.versions))

    def join(self, other: MVRegister) -> MVRegister:
        return MVRegister(
            join_dot_map(self.versions, self.cc, other.versions, other.cc, _later_version),
            self.cc.join(other.cc),
        )

    def siblings(self, now_ms: int | None = None) -> list[tuple[Dot, Version]]:
        """Live versions in a replica-independent order (timestamp, then dot)."""
        items = [
            (dot, v) for dot, v in self.versions.items() if now_ms is None or v.visible(now_ms)
        ]
        items.sort(key=lambda item: (item[1].ts, item[0]))
        return items

    def expired_dots(self, now_ms: int) -> list[Dot]:
        return [dot for dot, v in self.versions.items() if not v.visible(now_ms)]

    def drop(self, dots: list[Dot]) -> MVRegister:
        """Delta removing specific versions (used when they expire)."""
        return MVRegister({}, CausalContext.of(dots))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MVRegister)
            and self.versions == other.versions
            and self.cc == other.cc
        )

    def __hash__(self) -> int:
        return hash(frozenset(self.versions))

    def __repr__(self) -> str:
        return f"MVRegister({self.versions!r}, {self.cc!r})"
