"""The `[archive]` section: how often the archiver runs and how it compresses."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, setting


@dataclass(frozen=True)
class ArchiveConfig:
    """The archiver: a background pass that moves stale entries into compressed segments."""

    interval: float = setting(60.0, "s", low=0.01)
    """Seconds between archiver passes (and between writes of what was read). Entries are
    archived at most this long after they become stale."""

    level: int = setting(3, "", low=1, high=22)
    """zstandard compression level: higher compresses better and archives slower."""

    frame_bytes: int = setting(1 << 20, "bytes", low=4096, high=64 << 20)
    """Bytes of entries compressed together in one frame. Larger frames compress better;
    reading one archived entry decompresses its whole frame."""

    segment_bytes: int = setting(64 << 20, "bytes", low=1 << 16)
    """Bytes of a segment file before the next one starts. A segment whose entries were
    all restored or dropped is deleted."""

    batch: int = setting(2000, "entries", low=1)
    """Entries moved per commit; a pass commits as many batches as it needs."""

    def __post_init__(self) -> None:
        check_settings(self, "archive")
