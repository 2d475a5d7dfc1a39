"""What the engine publishes after each commit: namespace definitions and counts.

The single writer thread is the only one that changes definitions and
per-namespace counts; everyone else (the event loop, scans on worker threads,
the vector indexer) reads the `Catalog` it published last. A catalog is never
changed once published, so no thread ever iterates a structure another thread
is changing, and a reader sees the counts and definitions of one commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from swarmnode.storage.namespaces import BUILTINS, NamespaceDef, reserved
from swarmnode.storage.usage import NO_USAGE, Usage

Counts = tuple[int, int, int]
"""(stored entries, live entries, bytes) of one namespace."""

_NO_COUNTS: Counts = (0, 0, 0)


@lru_cache(maxsize=4096)
def _undefined(ns: str) -> NamespaceDef:
    """The definition of a namespace nobody defined (immutable, so shared): every request
    to such a namespace looks it up several times, and building it each time costs more
    than the lookup."""
    return NamespaceDef(ns)


@dataclass(frozen=True)
class Catalog:
    definitions: Mapping[str, NamespaceDef]
    """Namespaces defined through `_ns` (deleted ones too, with their `cleared_at`)."""
    counts: Mapping[str, Counts]
    seq: int
    """The change-feed position of the commit this catalog reflects."""
    usage: Mapping[str, Usage] = field(default_factory=lambda: MappingProxyType({}))
    """Per agent: (bytes, entries, vectors) of the live entries it wrote last."""

    @classmethod
    def of(
        cls,
        definitions: dict[str, NamespaceDef],
        counts: dict[str, Any],
        seq: int,
        usage: dict[str, Any] | None = None,
    ) -> Catalog:
        return cls(
            MappingProxyType(dict(definitions)),
            MappingProxyType({ns: tuple(c) for ns, c in counts.items()}),
            seq,
            MappingProxyType({a: tuple(u) for a, u in (usage or {}).items()}),
        )

    def usage_of(self, agent: str) -> Usage:
        return self.usage.get(agent, NO_USAGE)

    def namespace(self, ns: str) -> NamespaceDef:
        found = self.definitions.get(ns)
        if found is not None:
            return found
        return BUILTINS.get(ns) or _undefined(ns)

    def names(self) -> list[str]:
        """Namespaces that are defined (and not deleted), built in, or hold live entries."""
        names = {n for n, d in self.definitions.items() if not d.deleted}
        names.update(n for n in BUILTINS if not self.namespace(n).deleted)
        names.update(n for n, c in self.counts.items() if c[1] > 0 and not reserved(n))
        return sorted(names)

    def known(self, ns: str) -> bool:
        """A name a client may mean: defined (or deleted, with what it cleared), built in,
        or holding stored entries (tombstones too). Anything else is a misspelling."""
        if ns in self.definitions or ns in BUILTINS:
            return True
        counts = self.counts.get(ns)
        return counts is not None and counts[0] > 0

    def ns_stats(self, ns: str) -> dict[str, int]:
        stored, live, nbytes = self.counts.get(ns, _NO_COUNTS)
        return {"entries": live, "stored": stored, "tombstones": stored - live, "bytes": nbytes}

    def data_namespaces(self) -> list[str]:
        """Namespaces with stored entries (tombstones included), the system one too."""
        return sorted(n for n, c in self.counts.items() if c[0] > 0)
