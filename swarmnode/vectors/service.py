"""The vector layer as the node serves it: `vsearch`, `vsearch_many`, the `embed` step, stats.

`attach_vectors` wires it to a running node: it subscribes to the node's
committed changes, starts the indexer thread, registers the `vsearch` and
`vsearch_many` executors, and adds the `embed` step to the service chain,
which turns text into vectors for namespaces that name an embedder (a put's
text value, a vsearch's query text) and completes `ns_init` from the
embedder's dimension.

A search runs on a worker thread under its namespace's read lock. Before it
starts it waits (at most `fresh_wait`) until the indexer has applied every
change the node had committed when the request arrived, so a client finds
what it has just written. Every hit is then read back against the store for
its value and metadata (`readback`: from cached records when the index holds
every change the read sees), and a hit whose entry is gone, expired, changed
its vector or no longer passes the filter is dropped and the search run again
without it: an index that lags the store can cost retries, never a removed
key in a reply nor a live one left out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmnode.errors import BadRequest, Conflict, NotFound, Unavailable
from swarmnode.lazyimport import lazy_module
from swarmnode.metrics import Registry, merge_tree
from swarmnode.runtime.host import NodeHost
from swarmnode.service.chain import NOTHING, Hooks, Next, Service
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage.namespaces import SYSTEM_NS, NamespaceDef
from swarmnode.storage.ops import Change
from swarmnode.tagged_cache import TaggedCache
from swarmnode.vectors.collector import paused_call
from swarmnode.vectors.config import VectorConfig
from swarmnode.vectors.embedders import Embedders, spec_of, text_of
from swarmnode.vectors.filters import Filter, parse_filter
from swarmnode.vectors.indexer import RECHECK, Indexer, indexed_version
from swarmnode.vectors.readback import Good, ReadBack
from swarmnode.vectors.records import read_entry
from swarmnode.vectors.rwlock import Busy
from swarmnode.vectors.shards import BETTER
from swarmnode.vectors.space import Hit, Space

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("swarmnode.vectors")

MAX_FETCH = 1_024

Round = tuple[Good, list[Hit], bool]
"""One round of a search: the good (distance, item) pairs, the stale hits, exactness."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class VectorMemory:
    def __init__(
        self,
        host: NodeHost,
        directory: Path,
        cfg: VectorConfig,
        *,
        clock: Callable[[], int] = wall_ms,
        inline: bool = False,
    ) -> None:
        """`inline=True` runs the indexer on the event loop instead of a thread of its own
        (the simulator does: it has one thread, and virtual time)."""
        self.host = host
        self.store = host.node.store
        self.cfg = cfg
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self.cache = TaggedCache(cfg.cache_bytes)
        self.embedders = Embedders(self.cache)
        self.inline = inline
        self._pump_scheduled = False
        metrics = host.metrics
        self.indexer = Indexer(
            self.store,
            directory,
            cfg,
            clock,
            self.cache,
            self._applied_elsewhere,
            threaded=not inline,
            monotonic=self.loop.time,
            metrics=metrics,
        )
        self.enqueued_seq = 0
        self.applied_seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loaded = asyncio.Event()
        self._declare_metrics(metrics)
        self._unsubscribe = host.add_listener(self._on_change)
        self.indexer.start()
        if inline:
            self.loop.call_later(1.0, self._maintain)

    def _declare_metrics(self, m: Registry) -> None:
        """The loop side's metrics (the indexer thread declares its own)."""
        self._searches = m.counter(
            "swarmnode_vectors_searches_total",
            "Vector queries answered (a vsearch, or each query of a vsearch_many).",
            stats=("vectors", "searches"),
        )
        self._retries = m.counter(
            "swarmnode_vectors_search_retries_total",
            "vsearch rounds repeated because the index returned keys the store no longer "
            "holds that way.",
            stats=("vectors", "search_retries"),
        )
        self._stale = m.counter(
            "swarmnode_vectors_searches_behind_index_total",
            "vsearch requests answered while the index still lagged after fresh_wait.",
            stats=("vectors", "searches_behind_index"),
        )
        m.gauge(
            "swarmnode_vectors_applied_seq",
            "Store sequence number the vector index reflects.",
            fn=lambda: self.applied_seq,
            stats=("vectors", "applied_seq"),
        )
        m.gauge(
            "swarmnode_vectors_checkpoint_seq",
            "Store sequence number of the latest index checkpoint.",
            fn=lambda: self.indexer.checkpoint_seq,
            stats=("vectors", "checkpoint_seq"),
        )
        m.gauge(
            "swarmnode_vectors_lag_changes",
            "Changes committed and not yet in the vector index.",
            fn=lambda: max(0, self.enqueued_seq - self.applied_seq),
            stats=("vectors", "lag"),
        )

    @property
    def retries(self) -> int:
        """vsearch rounds repeated since start (the `search_retries` stat)."""
        return int(self._retries.value)

    # --- wiring ------------------------------------------------------------------

    def register(self, service: Service) -> None:
        service.register("vsearch", self.vsearch)
        service.register("vsearch_many", self.vsearch_many)
        service.use(Embed(self), before="route")

    def _on_change(self, change: Change) -> None:
        ns = change.ns
        if ns != SYSTEM_NS and self.store.namespace(ns).dim is None:
            # Nothing of it is indexed (a definition that adds a dimension arrives as a
            # change of its own and builds the namespace's index from the store): the
            # indexer thread is not woken for it, only told it is covered.
            self.indexer.covered_seq = change.seq
            return
        self.enqueued_seq = max(self.enqueued_seq, change.seq)
        self.indexer.submit(change.seq, ns, change.key)
        self.indexer.covered_seq = change.seq
        if self.inline and not self._pump_scheduled:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self.indexer.state == "ready":
            self.indexer.pump()

    def _maintain(self) -> None:
        """Inline: what the indexer thread does when idle (expiry, compaction, checkpoints)."""
        if self.indexer.state == "ready":
            self.indexer.pump()
            self.loop.call_later(1.0, self._maintain)

    def _applied_elsewhere(self, seq: int) -> None:
        # A closed loop (the node is stopping) has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._applied, seq)

    def _applied(self, seq: int) -> None:
        self._loaded.set()
        self.applied_seq = max(self.applied_seq, seq)
        still = []
        for target, fut in self._waiters:
            if target <= self.applied_seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((target, fut))
        self._waiters = still

    async def caught_up(self, timeout: float) -> bool:
        """Wait until every change committed so far is in the index; False on timeout."""
        target = self.enqueued_seq
        if self.applied_seq >= target:
            return True
        fut: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append((target, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    def abandon(self) -> None:
        """The process died (in the simulator): no final checkpoint, the index files stay as
        they were, and the next start replays the store's change feed from the last one."""
        self._unsubscribe()
        self.indexer.state = "stopped"
        self.indexer.catalog.close()

    async def close(self) -> None:
        """Stop following the node, apply what is queued and write a final checkpoint."""
        self._unsubscribe()
        await asyncio.to_thread(self.indexer.stop)

    # --- vsearch -----------------------------------------------------------------

    async def vsearch(self, req: Request) -> Any:
        a = req.args
        ns = a["ns"]
        definition, k, ef, flt = self._checked("vsearch", a)
        if not self._fresh_now():
            await self._fresh(ns)
        query = self._given_vector(req, definition)
        if query is None:
            query = await asyncio.to_thread(self._vector_of_key, ns, a["key"])
        space = self._space("vsearch", ns)
        if space is None:
            return self._reply(definition, True, items=[])
        outside = self._outside(space, definition)
        found = self._search_on_loop(space, query, k, flt, ef, outside)
        if found is None:
            found = await self._search_off_loop(space, query, k, flt, ef, outside)
        self._searches.inc()
        return self._reply(definition, found[1], items=found[0])

    async def vsearch_many(self, req: Request) -> Any:
        """Many queries in one request: one hnswlib call per shard for all of them (the
        library loops over the rows in C), then each query's hits read back and, where
        stale, searched again exactly as a lone vsearch would be."""
        a = req.args
        ns = a["ns"]
        definition, k, ef, flt = self._checked("vsearch_many", a)
        check_embedder("vsearch_many", definition, a.get("embedder"))
        queries = query_matrix(a["vectors"], definition)
        if not self._fresh_now():
            await self._fresh(ns)
        space = self._space("vsearch_many", ns)
        if space is None:
            return self._reply(definition, True, results=[{"items": []} for _ in queries])
        outside = self._outside(space, definition)
        results, exact, retries = await asyncio.to_thread(
            paused_call, self._search_many, space, queries, k, flt, ef, outside
        )
        self._retries.inc(retries)
        self._searches.inc(len(queries))
        return self._reply(definition, exact, results=results)

    def _checked(
        self, op: str, a: dict[str, Any]
    ) -> tuple[NamespaceDef, int, int | None, Filter | None]:
        """The namespace's definition, k, ef and filter of a search, or BadRequest."""
        ns = a["ns"]
        definition = self.store.namespace(ns)
        if definition.deleted or definition.dim is None:
            raise BadRequest(
                f"{op}: namespace {ns!r} has no vector dimension; declare one with "
                "ns_init(dim=..., metric=...) first"
            )
        k = a["k"]
        if k > self.cfg.max_k:
            raise BadRequest(f"{op}: 'k' must be between 1 and {self.cfg.max_k}")
        ef = a.get("ef")
        if ef is not None and ef > self.cfg.max_ef:
            raise BadRequest(f"{op}: 'ef' must be between 1 and {self.cfg.max_ef}")
        return definition, k, ef, parse_filter(a.get("filter"))

    def _fresh_now(self) -> bool:
        """The index is loaded, working and holds every change committed so far: a search has
        nothing to wait for (the common case, which then costs no coroutines)."""
        return (
            self._loaded.is_set()
            and self.applied_seq >= self.enqueued_seq
            and self.indexer.state != "failed"
        )

    async def _fresh(self, ns: str) -> None:
        """Wait for the index to load and to hold what was committed before this request."""
        await self._ready()
        if not await self.caught_up(self.cfg.fresh_wait):
            # Answer from the index as it is (never with a removed key), and say so.
            self._stale.inc()
            log.warning(
                "event=vsearch_index_behind ns=%s lag=%d waited_s=%g",
                ns,
                self.enqueued_seq - self.applied_seq,
                self.cfg.fresh_wait,
            )

    def _space(self, op: str, ns: str) -> Space | None:
        """The namespace's index (None: it holds no vectors yet); `unavailable` while it is
        being rebuilt."""
        space = self.indexer.spaces.get(ns)
        if space is not None and space.building is not None:
            done, total = space.building
            raise Unavailable(f"{op}: vectors of {ns!r} are being rebuilt ({done}/{total})")
        return space

    @staticmethod
    def _reply(definition: NamespaceDef, exact: bool, **found: Any) -> dict[str, Any]:
        """A search's reply: the namespace's head, exactness, and `items` or `results`."""
        return {
            "ns": definition.name,
            "metric": definition.metric,
            "better": BETTER[definition.metric],
            "embedder": definition.embedder,
            "exact": exact,
            **found,
        }

    async def _ready(self) -> None:
        if not self._loaded.is_set():
            try:
                await asyncio.wait_for(self._loaded.wait(), self.cfg.ready_wait)
            except TimeoutError:
                raise Unavailable("vsearch: the vector index is still loading") from None
        if self.indexer.state == "failed":
            raise Unavailable("vsearch: the vector index failed; see the node's log")

    def _given_vector(self, req: Request, definition: NamespaceDef) -> np.ndarray | None:
        """The query vector the request holds (sent, or embedded from its text), or None for a
        query by key (read off the loop by the caller)."""
        a = req.args
        given = [n for n in ("vector", "key") if a.get(n) is not None]
        if len(given) != 1:
            raise BadRequest("vsearch: give exactly one of vector, text or key")
        ns, dim = definition.name, definition.dim
        if given[0] == "key":
            return None
        if not req.notes.get("embedded"):
            check_embedder("vsearch", definition, a.get("embedder"))
        vector = query_array(a["vector"])
        if len(vector) != dim:
            raise BadRequest(
                f"vsearch: vector has {len(vector)} dimensions; namespace {ns!r} expects {dim}"
            )
        return vector

    async def embed_query(self, req: Request) -> None:
        """A vsearch by text: the query vector from the namespace's embedder."""
        a = req.args
        if any(a.get(n) is not None for n in ("vector", "key")):
            raise BadRequest("vsearch: give exactly one of vector, text or key")
        definition = self.store.namespace(a["ns"])
        if definition.embedder is None:
            raise BadRequest(
                f"vsearch: namespace {a['ns']!r} names no embedder, so it cannot embed text; "
                "send a vector"
            )
        if definition.dim is None:
            return
        vector = await asyncio.to_thread(self.embedders.embed, definition.embedder, a.pop("text"))
        if len(vector) != definition.dim:
            raise BadRequest(
                f"vsearch: embedder {definition.embedder} gives {len(vector)} dimensions; "
                f"namespace {a['ns']!r} holds {definition.dim}"
            )
        a["vector"] = vector.astype("<f4").tobytes()
        req.notes["embedded"] = True

    def vector(self, ns: str, key: str) -> np.ndarray | None:
        """The indexed vector of a live entry, from the cache when it is hot."""
        try:
            return self._vector_of_key(ns, key)
        except NotFound:
            return None

    def _vector_of_key(self, ns: str, key: str) -> np.ndarray:
        with self.store.read() as txn:
            entry = read_entry(self.store, txn, ns, key, self.cache)
        version = indexed_version(self.store, ns, entry, self.clock())
        if version is None:
            raise NotFound(f"vsearch: {key!r} in {ns!r} is not a live entry with a vector")
        return np.frombuffer(version.vector, dtype="<f4")

    def _outside(self, space: Space, definition: NamespaceDef) -> AbstractSet[int]:
        """In a sharded namespace, the labels of partitions this node holds without owning
        them complete (hints, partitions being handed away or still being received): a
        search leaves them out, since an owner that has them complete answers for them.

        A scatter gives each partition to one owner, but every owner searches all it holds
        complete: the k best of a superset still hold the k best of its part, and the
        merge keeps each key once, so no label filter slows the common search."""
        if not definition.partitions or space.buckets is None:
            return frozenset()
        pmap = self.host.node.placement.map
        if pmap.sharding(definition.name) is None:
            return frozenset()
        ready = frozenset(p for p in pmap.owned(definition.name) if pmap.ready(definition.name, p))
        with space.lock.read():
            return space.labels_outside(ready, definition.partitions)

    def _search_on_loop(
        self,
        space: Space,
        query: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        outside: AbstractSet[int],
    ) -> tuple[list[dict[str, Any]], bool] | None:
        """(items, exact) of a search cheap enough to run on the event loop and answered in
        one clean round there; None: it belongs on a worker thread (`_search_off_loop`)."""
        cheap = flt is None and ef is None and not outside and len(space) > self.cfg.exact_below
        if not (self.cfg.search_on_loop and cheap):
            return None
        try:
            items, exact, _ = self._search(space, query, k, flt, ef, blocking=False)
        except Busy:
            return None  # the indexer holds the namespace, or the index lags
        return items, exact

    async def _search_off_loop(
        self,
        space: Space,
        query: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        outside: AbstractSet[int],
    ) -> tuple[list[dict[str, Any]], bool]:
        """(items, exact) of a search run on a worker thread, repeating rounds as it must."""
        items, exact, retries = await asyncio.to_thread(
            self._search, space, query, k, flt, ef, True, outside
        )
        self._retries.inc(retries)  # counted here, on the loop: the counter's one writer
        return items, exact

    def _search(
        self,
        space: Space,
        query: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        blocking: bool = True,
        outside: AbstractSet[int] = frozenset(),
        first: Round | None = None,
    ) -> tuple[list[dict[str, Any]], bool, int]:
        """(items, exact, rounds repeated); off the loop unless `blocking` is False, in
        which case it raises `Busy` rather than repeat a round. Labels in `outside` (other
        partitions of a sharded namespace) are never returned. `first`: the first round,
        already searched and read back (by `_search_many`)."""
        retries = 0
        exclude: set[int] = set(outside)
        found: dict[str, tuple[float, dict[str, Any]]] = {}
        fetch = k
        while True:
            if first is not None:
                (good, stale, exact), first = first, None
            else:
                hits, exact, applied = self._index_search(
                    space, query, fetch, flt, ef, exclude, blocking
                )
                with self.store.read() as txn:
                    reading = ReadBack(
                        self.store, self.cache, space, txn, applied, self.clock(), [hits]
                    )
                    good, stale = reading.items(hits, flt, query)
            if not stale and not found:
                # One clean round: its items are the hits' own, in the hits' order
                # (by distance, then key; no distance was recomputed), one per key.
                return [item for _, item in good[:k]], exact, retries
            for distance, item in good:
                found.setdefault(item["key"], (distance, item))
            if not stale:
                break
            if not blocking:
                raise Busy  # rounds of re-searching belong on a worker thread
            # The index lags the store for these: search again without them
            # (a changed entry is already in `good` with its current vector)
            # and have the indexer look at them again. Only a round without a
            # stale hit proves that no live entry ranks above the ones found,
            # so there is no cap on rounds; each excludes at least one more
            # label, and the doubling fetch keeps them few when much of the
            # index is stale (a mass expiry the indexer has not yet applied).
            retries += 1
            exclude.update(h.label for h in stale)
            for h in stale:
                self.indexer.submit(RECHECK, space.ns, h.key)
            fetch = min(2 * fetch, max(k, MAX_FETCH))
        ranked = sorted(found.values(), key=lambda pair: (pair[0], pair[1]["key"]))
        return [item for _, item in ranked[:k]], exact, retries

    def _search_many(
        self,
        space: Space,
        queries: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        outside: AbstractSet[int],
    ) -> tuple[list[dict[str, Any]], bool, int]:
        """`_search` for each row of `queries` (on a worker thread, with the cyclic collector
        paused: `collector.paused_call`), as the reply's results: the first round of all
        the queries in one batched index search, any further rounds query by query."""
        rounds, exact, applied = self._index_search_many(
            space, queries, k, flt, ef, set(outside), True
        )
        with self.store.read() as txn:
            reading = ReadBack(self.store, self.cache, space, txn, applied, self.clock(), rounds)
            read = [
                reading.items(hits, flt, query) for query, hits in zip(queries, rounds, strict=True)
            ]
        results = []
        retries = 0
        for query, (good, stale) in zip(queries, read, strict=True):
            if not stale:
                results.append({"items": [item for _, item in good[:k]]})  # as `_search`
                continue
            items, clean, repeated = self._search(
                space, query, k, flt, ef, True, outside, first=(good, stale, exact)
            )
            results.append({"items": items})
            exact = exact and clean
            retries += repeated
        return results, exact, retries

    def _index_search(
        self,
        space: Space,
        query: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        exclude: set[int],
        blocking: bool,
    ) -> tuple[list[Hit], bool, int]:
        """`Space.search`, and the change-feed seq the index reflected while it ran."""
        if ef is None or ef == self.cfg.ef_search:
            with space.lock.read(blocking):
                applied = self.indexer.applied_seq
                return (*space.search(query, k, flt, exclude), applied)
        hits, exact, applied = self._index_search_many(
            space, query[None, :], k, flt, ef, exclude, blocking
        )
        return hits[0], exact, applied

    def _index_search_many(
        self,
        space: Space,
        queries: np.ndarray,
        k: int,
        flt: Filter | None,
        ef: int | None,
        exclude: set[int],
        blocking: bool,
    ) -> tuple[list[list[Hit]], bool, int]:
        """`Space.search_many`, and the change-feed seq the index reflected while it ran
        (read under the lock: the indexer moves it only after its change is in the space)."""
        if ef is None or ef == self.cfg.ef_search:
            with space.lock.read(blocking):
                applied = self.indexer.applied_seq
                return (*space.search_many(queries, k, flt, exclude), applied)
        # hnswlib keeps ef per index, not per query: another ef needs the index alone.
        with space.lock.write():
            applied = self.indexer.applied_seq
            for shard in space.shards.values():
                shard.index.set_ef(ef)
            try:
                return (*space.search_many(queries, k, flt, exclude), applied)
            finally:
                for shard in space.shards.values():
                    shard.index.set_ef(self.cfg.ef_search)

    # --- text in: put and ns_init ------------------------------------------------

    async def embed_put(self, req: Request) -> None:
        """A put's vector from its text value, in a namespace that names an embedder."""
        a = req.args
        definition = self.store.namespace(a["ns"])
        named = a.pop("embedder", None)
        if definition.embedder is None:
            if named is not None:
                raise BadRequest(f"put: namespace {a['ns']!r} names no embedder")
            return
        if a.get("vector") is not None:
            check_embedder("put", definition, named)
            return
        text = text_of(a.get("value"))
        if text is not None:
            vector = await asyncio.to_thread(self.embedders.embed, definition.embedder, text)
            a["vector"] = vector.astype("<f4").tobytes()

    def complete_ns_init(self, req: Request) -> None:
        """An embedder fixes the dimension; a namespace holding vectors keeps its embedder."""
        a = req.args
        name = a.get("embedder")
        if name is None:
            return
        spec = spec_of(name)
        a["embedder"] = spec.name
        dim = a.get("dim")
        if dim is None:
            a["dim"] = spec.dim
        elif dim != spec.dim:
            raise BadRequest(
                f"ns_init: embedder {spec.name} gives {spec.dim} dimensions, not {dim}"
            )
        ns = a["ns"]
        current = self.store.namespace(ns)
        space = self.indexer.spaces.get(ns)
        if current.embedder not in (None, spec.name) and space is not None and len(space):
            raise Conflict(
                f"ns_init: namespace {ns!r} holds vectors made by {current.embedder}; "
                "delete the namespace to change its embedder"
            )

    # --- stats -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The `vectors` section of the node's `stats`: its metrics and `stats_extras`."""
        section = self.host.metrics.snapshot("vectors")
        return {"vectors": merge_tree(section, self.stats_extras()["vectors"])}

    def stats_extras(self) -> dict[str, Any]:
        """What the `vectors` section shows beside the registry's metrics."""
        namespaces = {}
        for ns, space in list(self.indexer.spaces.items()):
            definition = self.store.namespace(ns)
            shards = [
                {
                    "id": s.id,
                    "live": len(s.members),
                    "slots": s.count,
                    "capacity": s.index.max_elements,
                }
                for s in list(space.shards.values())
            ]
            namespaces[ns] = {
                "dim": space.dim,
                "metric": space.metric,
                "embedder": definition.embedder,
                "vectors": len(space),
                "shards": shards,
                "exact_search": len(space) <= self.cfg.exact_below,
                "building": list(space.building) if space.building else None,
            }
        return {
            "vectors": {
                "state": self.indexer.state,
                "namespaces": namespaces,
                "cache": self.cache.stats(),
                "embedders": self.embedders.stats(),
                **self.indexer.timings,
            }
        }


def query_array(raw: Any, what: str = "vsearch: vector") -> np.ndarray:
    """A query vector (a list of numbers, or little-endian float32 bytes) as float32;
    `what` names it in errors."""
    try:
        if isinstance(raw, bytes):
            if len(raw) % 4:
                raise ValueError
            vector = np.frombuffer(raw, dtype="<f4")
        elif isinstance(raw, list | tuple):
            vector = np.array(raw, dtype=np.float64).astype(np.float32)
        else:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"{what} must be a list of numbers or float32 bytes") from None
    if vector.ndim != 1 or not len(vector):
        raise BadRequest(f"{what} must be a non-empty list of numbers")
    if not np.isfinite(vector).all():
        raise BadRequest(f"{what} must not contain NaN or infinite values")
    return vector


def query_matrix(raw: list[Any], definition: NamespaceDef) -> np.ndarray:
    """`vsearch_many`'s query vectors as one float32 row each; any bad one refuses them all,
    naming its position. Vectors sent as float32 bytes (the clients' form) are joined and
    checked as one array, without a Python step per component."""
    dim = definition.dim
    assert dim is not None
    width = 4 * dim
    if all(isinstance(v, bytes) and len(v) == width for v in raw):
        matrix = np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), dim)
        if np.isfinite(matrix).all():
            return matrix
    rows = []
    for i, v in enumerate(raw):
        vector = query_array(v, f"vsearch_many: vectors[{i}]")
        if len(vector) != dim:
            raise BadRequest(
                f"vsearch_many: vectors[{i}] has {len(vector)} dimensions; namespace "
                f"{definition.name!r} expects {dim}"
            )
        rows.append(vector)
    return np.stack(rows)


def check_embedder(op: str, definition: NamespaceDef, named: str | None) -> None:
    """A raw vector for a namespace with an embedder must say it came from that embedder."""
    if definition.embedder is None:
        if named is not None:
            raise BadRequest(f"{op}: namespace {definition.name!r} names no embedder")
        return
    if named is None or spec_of(named).name != definition.embedder:
        raise BadRequest(
            f"{op}: namespace {definition.name!r} holds vectors of embedder "
            f"{definition.embedder}; send text, or a vector made by it with "
            f"embedder={definition.embedder!r}"
        )


class Embed:
    """The `embed` step: text to vectors before execute, for namespaces with an embedder."""

    name = "embed"
    ops = frozenset({"put", "ns_init", "vsearch"})

    def __init__(self, memory: VectorMemory) -> None:
        self.memory = memory

    def hooks(self, spec: OpSpec) -> Hooks:
        """Inline checks (no coroutine of its own on the chain): a put runs the step in
        full only in a namespace with an embedder, a vsearch only for a text query."""
        if spec.name == "put":
            return Hooks(enter=self._put_embeds)
        if spec.name == "ns_init":
            return Hooks(enter=self._ns_init)
        if spec.name == "vsearch":
            return Hooks(enter=lambda req: req.args.get("text") is not None)
        return NOTHING

    def _put_embeds(self, req: Request) -> bool:
        a = req.args
        if self.memory.store.namespace(a["ns"]).embedder is not None:
            return True
        if a.pop("embedder", None) is not None:
            raise BadRequest(f"put: namespace {a['ns']!r} names no embedder")
        return False

    def _ns_init(self, req: Request) -> bool:
        self.memory.complete_ns_init(req)
        return False

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if req.op == "put":
            await self.memory.embed_put(req)
        elif req.op == "ns_init":
            self.memory.complete_ns_init(req)
        elif req.op == "vsearch" and req.args.get("text") is not None:
            await self.memory.embed_query(req)
        return await nxt(req)


def attach_vectors(
    host: NodeHost,
    service: Service,
    data_dir: Path | None = None,
    config: VectorConfig | None = None,
    *,
    clock: Callable[[], int] = wall_ms,
    inline: bool = False,
) -> VectorMemory:
    """Give a running node its vector index.

    Call it on the event loop, after the service exists and before clients
    connect; `await memory.close()` before the store closes.
    """
    directory = Path(data_dir) if data_dir is not None else host.node.store.path
    profile = host.node.config.profile
    memory = VectorMemory(
        host,
        directory / "vectors",
        config or VectorConfig.for_profile(profile),
        clock=clock,
        inline=inline,
    )
    memory.register(service)
    return memory
