"""A byte-bounded LRU whose items carry a version tag: a lookup with another tag is a miss.

Decoding a stored entry costs more than finding it, so hot entries are kept
decoded, tagged with their LMDB record's digest (the digest of the whole entry
state): a reader looks the record up, compares 16 bytes, and reuses the decoded
value while they match. Content addressing makes invalidation unnecessary; a
changed entry has another digest. Users:

- the store's read path (`Store.get_header`): decoded entries for `get`;
- the vector layer: ("e", namespace, key) decoded entries with their vectors,
  for reading search hits back and for queries by key, and ("t", embedder,
  text) embeddings, so a repeated query text is not run through the model again.

An item costs its payload size (for an entry, its record size; for a
384-dimension vector and a small value about 1.7 KB) plus about 150 bytes of
bookkeeping; the total is held under `capacity` bytes by evicting the least
recently used. Cached values are shared, never copied: callers must not mutate
them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

ITEM_OVERHEAD = 150


class TaggedCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, tuple[Any, Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, tag: Any = None) -> Any:
        """The cached value, if present and stored with the same `tag` (a version digest)."""
        with self._lock:
            return self._find(key, tag)

    def get_many(self, keys: list[Hashable], tags: list[Any]) -> list[Any]:
        """`get` for each key with its tag (None for a miss), under one lock: a search reads
        all its hits back at once, and a lock per hit costs more than the lookup."""
        with self._lock:
            return [self._find(key, tag) for key, tag in zip(keys, tags, strict=True)]

    def _find(self, key: Hashable, tag: Any) -> Any:
        """The lookup of `get` (the caller holds the lock)."""
        item = self._items.get(key)
        if item is None or item[0] != tag:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: Any, tag: Any = None, nbytes: int | None = None) -> None:
        """Cache `value`; `nbytes` is its payload size (a numpy array's own by default)."""
        size = (value.nbytes if nbytes is None else nbytes) + ITEM_OVERHEAD
        if size > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            self._items[key] = (tag, value, size)
            self._bytes += size
            while self._bytes > self.capacity:
                _, (_, _, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def discard(self, key: Hashable) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[2]

    def discard_prefix(self, prefix: tuple[Any, ...]) -> None:
        """Drop every tuple key that starts with `prefix` (a namespace that went away)."""
        n = len(prefix)
        with self._lock:
            doomed = [k for k in self._items if isinstance(k, tuple) and k[:n] == prefix]
            for k in doomed:
                self._bytes -= self._items.pop(k)[2]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "items": len(self._items),
                "bytes": self._bytes,
                "capacity_bytes": self.capacity,
                "hits": self.hits,
                "misses": self.misses,
            }
