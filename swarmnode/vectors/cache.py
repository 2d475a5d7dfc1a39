"""A byte-bounded LRU of vectors and decoded entries, shared by the indexer and the searches.

Two uses, told apart by the first element of the key:

- ("e", namespace, key): a decoded entry with its vector, tagged with its
  LMDB record digest (see `records.py`), so a hot entry is read back for a
  search hit, or used as a query by `key`, without decoding it again;
- ("t", embedder, text): an embedding, so a repeated query text is not run
  through the model again.

An entry costs its record size (for a 384-dimension vector and a small value
about 1.7 KB) plus about 150 bytes of bookkeeping, an embedding 4 bytes per
dimension plus the same; the total is held under `capacity` bytes by evicting
the least recently used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

ITEM_OVERHEAD = 150


class VectorCache:
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
