"""Segment files: entries compressed with zstandard, many to a frame.

A segment `seg-<n>.zst` is a sequence of independent zstd frames; a frame
holds a msgpack list of records (an entry's canonical bytes), compressed
together so similar entries share a dictionary. An archived entry is found by
its `Pointer`: segment, frame offset, frame length, index in the frame.
Frames are appended and fsynced before the store commits the pointers to
them, so a pointer never names bytes that are not on disk; a crash between
the two leaves an unreferenced frame, which costs space until its segment is
deleted (a segment no pointer names any more is removed by `drop_unreferenced`).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import msgpack
import zstandard

from swarmnode.errors import InternalError

_NAME = re.compile(r"^seg-(\d{8})\.zst$")
FRAMES_KEPT = 4
"""Decompressed frames kept for reads that come in runs (a prefix restored)."""


@dataclass(frozen=True)
class Pointer:
    segment: int
    offset: int
    length: int
    index: int


class Segments:
    """The archive directory: appended by the archiver, read by the engine and readers."""

    def __init__(self, directory: Path, *, level: int = 3, segment_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.level = level
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()

    def path(self, segment: int) -> Path:
        return self.directory / f"seg-{segment:08d}.zst"

    def existing(self) -> list[int]:
        if not self.directory.exists():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def disk_bytes(self) -> int:
        return sum(self.path(n).stat().st_size for n in self.existing())

    def append(self, records: list[bytes]) -> tuple[list[Pointer], int]:
        """Compress `records` into one frame, append it durably; (pointers, frame bytes)."""
        frame = zstandard.ZstdCompressor(level=self.level).compress(
            msgpack.packb(records, use_bin_type=True)
        )
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            segments = self.existing()
            segment = segments[-1] if segments else 1
            path = self.path(segment)
            if path.exists() and path.stat().st_size >= self.segment_bytes:
                segment += 1
                path = self.path(segment)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                offset = os.fstat(fd).st_size
                os.write(fd, frame)
                os.fsync(fd)
            finally:
                os.close(fd)
        pointers = [Pointer(segment, offset, len(frame), i) for i in range(len(records))]
        return pointers, len(frame)

    def read(self, pointer: Pointer) -> bytes:
        """The record a pointer names; InternalError if the archive lost it."""
        key = (pointer.segment, pointer.offset)
        with self._lock:
            records = self._frames.get(key)
            if records is not None:
                self._frames.move_to_end(key)
        if records is None:
            try:
                with open(self.path(pointer.segment), "rb") as fh:
                    fh.seek(pointer.offset)
                    frame = fh.read(pointer.length)
                records = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(frame), raw=False)
            except (OSError, zstandard.ZstdError, ValueError) as exc:
                raise InternalError(f"archive segment {pointer.segment} unreadable: {exc}") from exc
            with self._lock:
                self._frames[key] = records
                while len(self._frames) > FRAMES_KEPT:
                    self._frames.popitem(last=False)
        if not 0 <= pointer.index < len(records):
            raise InternalError(f"archive segment {pointer.segment}: no record {pointer.index}")
        return records[pointer.index]

    def drop_unreferenced(self, referenced: set[int]) -> list[int]:
        """Delete every segment but the newest that no pointer names; which were deleted."""
        with self._lock:
            segments = self.existing()
            gone = [n for n in segments[:-1] if n not in referenced]
            for n in gone:
                self.path(n).unlink(missing_ok=True)
            self._frames = OrderedDict((k, v) for k, v in self._frames.items() if k[0] not in gone)
        return gone
