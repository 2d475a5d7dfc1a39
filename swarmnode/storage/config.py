"""Storage knobs: the `[store]` section of the configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StoreConfig:
    """Storage knobs. Sizes in bytes, times in seconds unless the name says otherwise."""

    # Upper bound of the LMDB map (virtual address space, not disk). Raise it
    # for stores beyond 64 GiB; writes beyond it fail with `unavailable`.
    map_size: int = 64 << 30
    # How long a deleted or expired entry is kept as a tombstone before it is
    # collected. A replica partitioned for longer than this can resurrect what
    # was deleted meanwhile; shorten it only where partitions are short.
    tombstone_grace: float = 24 * 3600.0
    # Largest key (UTF-8 bytes) and value (msgpack bytes) a client may write.
    max_key_bytes: int = 1024
    max_value_bytes: int = 1 << 20
    # Largest set member (UTF-8 bytes).
    max_member_bytes: int = 1024
    # fsync every commit. Off only for benchmarks and the simulator, where a
    # crash is simulated above the storage layer.
    sync: bool = True
    # Change-feed records kept for derived indexes (vectors) beyond the oldest
    # position a consumer still needs.
    changes_keep: int = 100_000
    # Largest clock lead accepted from a peer's timestamp, milliseconds.
    max_clock_offset_ms: int = 500
    # Decoded entries kept for reads (`get`), bytes. Hot keys are then read
    # without decoding; 0 turns the cache off.
    read_cache_bytes: int = 32 << 20

    @property
    def grace_ms(self) -> int:
        return int(self.tombstone_grace * 1000)
