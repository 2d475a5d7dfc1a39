"""Last-writer-wins register.

Writes are ordered by (HLC timestamp, node id, payload bytes). The node id
breaks ties between nodes that stamped the same instant; the payload bytes
break the tie a node can only produce after its data was lost and its clock
reused, so that even then every replica picks the same winner.

A delete is a tombstone: a register marked deleted, ordered like any write.
Against a concurrent write, the later (timestamp, node) wins, whichever it is.
"""

from __future__ import annotations

from typing import Any

import msgpack


class LWWRegister:
    __slots__ = ("deleted", "expires_at", "meta", "node", "ts", "value", "vector")

    def __init__(
        self,
        ts: int,
        node: str,
        value: Any = None,
        meta: dict[str, Any] | None = None,
        vector: bytes | None = None,
        *,
        deleted: bool = False,
        expires_at: int | None = None,
    ) -> None:
        self.ts = ts
        self.node = node
        self.value = value
        self.meta = meta
        self.vector = vector
        self.deleted = deleted
        self.expires_at = expires_at

    @classmethod
    def tombstone(cls, ts: int, node: str) -> LWWRegister:
        return cls(ts, node, deleted=True)

    def payload(self) -> list[Any]:
        return [self.deleted, self.value, self.meta, self.vector, self.expires_at]

    def order_key(self) -> tuple[int, str, bytes]:
        return (self.ts, self.node, msgpack.packb(self.payload()))

    def join(self, other: LWWRegister | None) -> LWWRegister:
        # `order_key` compared part by part: the payload is packed only on a tie.
        if other is None or other is self:
            return self
        if self.ts != other.ts:
            return self if self.ts > other.ts else other
        if self.node != other.node:
            return self if self.node > other.node else other
        return self if self.order_key() >= other.order_key() else other

    def visible(self, now_ms: int) -> bool:
        return not self.deleted and (self.expires_at is None or now_ms < self.expires_at)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return (
            isinstance(other, LWWRegister)
            and self.ts == other.ts
            and self.node == other.node
            and self.order_key() == other.order_key()
        )

    def __hash__(self) -> int:
        return hash(self.order_key())

    def __repr__(self) -> str:
        state = "deleted" if self.deleted else repr(self.value)
        return f"LWWRegister(ts={self.ts}, node={self.node!r}, {state})"
