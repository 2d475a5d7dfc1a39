"""Redis key names to swarmnode (namespace, key) and back.

The rule: a key `ns:rest` names key `rest` of namespace `ns` when a namespace
called `ns` exists (defined, built-in or holding data: what `ns_list` shows)
and `rest` is not empty; every other key (no colon, or a prefix that names no
namespace) is the whole string in namespace `default`. `swarm:plan` is
therefore `plan` in the built-in `swarm` namespace (and gets its 24 h TTL),
while `user:42` is `user:42` in `default` until someone creates a `user`
namespace. Only the first colon splits, so a namespace whose own name holds
a colon is reached only through the msgpack API.

Going back, a key of `default` is shown bare and any other as `ns:key`.

The namespace list is read through `ns_list` at most once per
`namespace_cache_s` (1 s by default), and at once after this front end
creates a namespace itself (VADD), so a namespace created elsewhere starts
capturing its prefix within that interval. Keys without a colon never need
the list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from swarmnode.resp.codec import ErrorReply

DEFAULT_NS = "default"

Clock = Callable[[], float]


class KeyMap:
    def __init__(
        self,
        list_namespaces: Callable[[], Awaitable[dict[str, Any]]],
        clock: Clock,
        ttl_s: float,
    ) -> None:
        self._list = list_namespaces
        self._clock = clock
        self._ttl = ttl_s
        self._names: frozenset[str] = frozenset()
        self._dims: dict[str, int | None] = {}
        self._read_at: float | None = None

    def invalidate(self) -> None:
        """Forget the list (this front end just created or changed a namespace)."""
        self._read_at = None

    async def namespaces(self) -> frozenset[str]:
        """The names of the namespaces that exist, at most `ttl_s` old."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl:
            reply = await self._list()
            items = reply.get("namespaces", [])
            self._names = frozenset(item["name"] for item in items)
            self._dims = {item["name"]: item.get("dim") for item in items}
            self._read_at = now
        return self._names

    async def dim(self, ns: str) -> int | None:
        """The vector dimension of namespace `ns` (None: no dimension, or no such namespace)."""
        await self.namespaces()
        return self._dims.get(ns)

    def resolve_now(self, raw: bytes) -> tuple[str, str] | None:
        """(namespace, key) for a Redis key without waiting; None if the list must be read
        first (`resolve` then reads it). Most keys resolve here: the list is rarely stale."""
        key = decode_key(raw)
        colon = key.find(":")
        if colon <= 0 or colon == len(key) - 1:
            return DEFAULT_NS, key
        read_at = self._read_at
        if read_at is None or self._clock() - read_at >= self._ttl:
            return None
        ns = key[:colon]
        if ns in self._names:
            return ns, key[colon + 1 :]
        return DEFAULT_NS, key

    async def resolve(self, raw: bytes) -> tuple[str, str]:
        """(namespace, key) for a Redis key."""
        found = self.resolve_now(raw)
        if found is not None:
            return found
        key = decode_key(raw)
        colon = key.find(":")
        ns = key[:colon]
        if ns in await self.namespaces():
            return ns, key[colon + 1 :]
        return DEFAULT_NS, key


def decode_key(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ErrorReply("ERR keys must be UTF-8 text") from None


def redis_name(ns: str, key: str) -> str:
    """The Redis key that names `key` of `ns`."""
    return key if ns == DEFAULT_NS else f"{ns}:{key}"
