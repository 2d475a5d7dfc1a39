"""Storage knobs: the `[store]` section of the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, setting

TEN_YEARS = 10 * 365 * 86400
MAX_MAP_SIZE = 1 << 48
"""LMDB maps are virtual address space; 256 TiB is what x86-64 user space can address."""


@dataclass
class StoreConfig:
    """Storage knobs. Sizes in bytes, times in seconds unless the name says otherwise."""

    map_size: int = setting(64 << 30, "bytes", low=1 << 20, high=MAX_MAP_SIZE)
    """Upper bound of the LMDB map (virtual address space, not disk). Raise it for stores
    beyond 64 GiB; writes beyond it fail with `unavailable`."""

    tombstone_grace: float = setting(24 * 3600.0, "s", low=0, high=TEN_YEARS)
    """How long a deleted or expired entry is kept as a tombstone before it is collected. A
    replica partitioned for longer than this can resurrect what was deleted meanwhile;
    shorten it only where partitions are short. Every node of a cluster must use the same
    value (checked when nodes join)."""

    max_key_bytes: int = setting(1024, "bytes", low=1, high=65536)
    """Largest key (UTF-8 bytes) a client may write."""

    max_value_bytes: int = setting(1 << 20, "bytes", low=1, high=1 << 30)
    """Largest value (msgpack bytes) a client may write; metadata has the same bound. It
    must fit one API frame (`[api] max_frame`) and one stream message
    (`[transport] max_stream_message`)."""

    max_member_bytes: int = setting(1024, "bytes", low=1, high=65536)
    """Largest set member (UTF-8 bytes)."""

    sync: bool = setting(True)
    """fsync every commit. Off only for benchmarks and the simulator, where a crash is
    simulated above the storage layer."""

    changes_keep: int = setting(100_000, "changes", low=0)
    """Change-feed records kept for derived indexes (vectors) beyond the oldest position a
    consumer still needs; more lets a lagging index catch up without a rebuild."""

    max_clock_offset_ms: int = setting(500, "ms", low=1, high=86_400_000)
    """Largest clock lead accepted from a peer's timestamp, milliseconds. Writes from a
    peer whose clock runs further ahead are refused as clock skew; every node of a cluster
    must use the same value (checked when nodes join)."""

    read_cache_bytes: int = setting(32 << 20, "bytes", low=0)
    """Decoded entries kept for reads (`get`), bytes. Hot keys are then read without
    decoding; 0 turns the cache off."""

    def __post_init__(self) -> None:
        check_settings(self, "store")

    @property
    def grace_ms(self) -> int:
        return int(self.tombstone_grace * 1000)
