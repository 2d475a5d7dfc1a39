"""Knobs of the vector layer, each with its unit, default and why one would change it."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, setting


@dataclass
class VectorConfig:
    """Vector index settings. Counts are vectors, sizes bytes, times seconds."""

    exact_below: int = setting(2_000, "vectors", low=0)
    """A namespace with at most this many live vectors, or a filter matching at most this
    many, is searched exactly with numpy instead of through HNSW: below it brute force
    costs well under a millisecond at 384 dimensions and is always right, and HNSW with a
    very selective filter degrades towards a graph walk over everything anyway. Raise it
    to trade latency for exactness."""

    shard_max: int = setting(131_072, "vectors", low=1)
    """Vectors per hnswlib shard. A shard starts at `initial_capacity`, doubles (a resize of
    milliseconds, never a rebuild) until it holds `shard_max`, and then a new shard opens.
    Every shard is searched and the results merged, so fewer, larger shards search faster;
    smaller shards make each checkpoint write and each rebuild of a lost shard cheaper."""

    initial_capacity: int = setting(1_024, "vectors", low=1)
    """Capacity of a new shard (capped at `shard_max`)."""

    m: int = setting(16, "", low=2, high=1024)
    """HNSW graph degree (hnswlib `M`). Higher raises recall and memory."""

    ef_construction: int = setting(200, "", low=1)
    """HNSW build-time beam (hnswlib `ef_construction`). Higher raises recall and build
    time."""

    ef_search: int = setting(64, "", low=1)
    """Search beam when a query gives no `ef`; raise it for recall, lower for speed."""

    max_k: int = setting(1_000, "hits", low=1)
    """Largest `k` a query may ask for."""

    max_ef: int = setting(10_000, "", low=1)
    """Largest `ef` a query may ask for."""

    build_threads: int = setting(2, "threads", low=1)
    """Threads hnswlib uses to insert a batch (the indexer's own thread plus helpers). 2
    matches this project's reference machine."""

    apply_batch: int = setting(64, "changes", low=1)
    """Changes the indexer applies under one hold of a namespace's write lock; searches of
    that namespace wait at most that long (about 0.5 ms each)."""

    checkpoint_changes: int = setting(2_000, "changes", low=1)
    """A checkpoint (shard files + label map + the store position they reflect) is written
    once at least `checkpoint_changes` changes are pending AND they are at least
    `checkpoint_ratio` of the open shard's size, or after `idle_checkpoint` seconds without
    changes. After a crash a restart replays at most that many changes from the store's
    change feed; a clean stop always checkpoints, so a restart then replays nothing."""

    checkpoint_ratio: float = setting(0.25, "", low=0)
    """See `checkpoint_changes`."""

    idle_checkpoint: float = setting(10.0, "s", low=0, above=True)
    """See `checkpoint_changes`."""

    search_on_loop: bool = setting(True)
    """Run searches on the event loop (true) or on worker threads (false). On the loop a
    search skips a thread hand-off of about 0.1 ms, the largest cost after the graph walk
    itself for one client; on threads concurrent searches use every core (hnswlib releases
    the GIL). Searches that go exact over more than `exact_below` vectors or run with a
    filter always use a thread."""

    fresh_wait: float = setting(2.0, "s", low=0)
    """A search waits at most this long for the indexer to apply every write acknowledged
    before the search arrived (read-your-writes); past it the search answers from the
    index as it is, never with a removed key."""

    ready_wait: float = setting(10.0, "s", low=0)
    """A search arriving while the index loads at start-up waits this long for it."""

    cache_bytes: int = setting(64 << 20, "bytes", low=0)
    """LRU of decoded entries with their vectors (search hits are read back, and `vsearch`
    by key reads its query, without decoding a hot entry again) and of text embeddings.
    Memory: the record size plus ~150 bytes per entry, about 1.9 KB for a 384-dimension
    vector with a small value, so the default 64 MiB holds some 35,000 of them. Raise it
    to hold a namespace's hot set; every search hit outside it costs one decode."""

    compact_below: float = setting(0.5, "", low=0, high=1)
    """A full shard whose live fraction falls below this is compacted: its live vectors
    move to the open shard and its file is dropped, so overwritten and deleted vectors do
    not pin memory forever."""

    catalog_map_size: int = setting(16 << 30, "bytes", low=1 << 20, high=1 << 48)
    """Largest LMDB map of the vector catalog (virtual address space, not disk)."""

    def __post_init__(self) -> None:
        check_settings(self, "vectors")

    @classmethod
    def lan(cls) -> VectorConfig:
        return cls()

    @classmethod
    def local(cls) -> VectorConfig:
        """Tests and clusters on one host: quick idle checkpoints, short waits."""
        return cls(idle_checkpoint=1.0, fresh_wait=5.0, ready_wait=30.0)

    @classmethod
    def for_profile(cls, profile: str) -> VectorConfig:
        return cls.local() if profile == "local" else cls.lan()
