"""One hnswlib index and its file: a shard of a namespace's vectors.

A shard grows by doubling its capacity (`resize_index`, a reallocation of a
few milliseconds, never a rebuild) until it holds `shard_max` vectors; then
its namespace opens a new one. Files are written whole to a temporary name,
fsynced and renamed, and their CRC-32 goes into the catalog, because hnswlib
trusts the bytes it loads: a truncated or damaged file must be caught before
`load_index` sees it.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from swarmnode.lazyimport import lazy_module
from swarmnode.vectors.catalog import ShardRecord
from swarmnode.vectors.config import VectorConfig

if TYPE_CHECKING:
    import hnswlib
    import numpy as np
else:
    hnswlib = lazy_module("hnswlib")
    np = lazy_module("numpy")

# Namespace metric -> hnswlib space. hnswlib's distances are all "lower is
# better": cosine and ip give 1 - similarity, l2 the squared distance.
SPACES = {"cosine": "cosine", "l2": "l2", "ip": "ip"}
# Which way the score a client sees points.
BETTER = {"cosine": "higher", "ip": "higher", "l2": "lower"}
_CHUNK = 16 << 20


def score(metric: str, distance: float) -> float:
    """An hnswlib distance as the client's score: similarity for cosine/ip, Euclidean for l2."""
    if metric == "l2":
        return math.sqrt(max(distance, 0.0))
    return 1.0 - distance


class ShardFileError(Exception):
    """A shard file that is missing or does not match its checkpoint."""


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


class Shard:
    def __init__(self, shard_id: int, index: hnswlib.Index) -> None:
        self.id = shard_id
        self.index = index
        # Live labels in this shard (the others are marked deleted in hnswlib).
        self.members: set[int] = set()
        self.dirty = False
        self.record: ShardRecord | None = None

    @classmethod
    def create(cls, shard_id: int, metric: str, dim: int, cfg: VectorConfig) -> Shard:
        index = hnswlib.Index(space=SPACES[metric], dim=dim)
        index.init_index(
            max_elements=min(cfg.initial_capacity, cfg.shard_max),
            M=cfg.m,
            ef_construction=cfg.ef_construction,
            random_seed=shard_id + 1,
        )
        index.set_ef(cfg.ef_search)
        shard = cls(shard_id, index)
        shard.dirty = True
        return shard

    @classmethod
    def load(
        cls, directory: Path, record: ShardRecord, metric: str, dim: int, cfg: VectorConfig
    ) -> Shard:
        path = directory / record.file
        if not path.is_file():
            raise ShardFileError(f"{path} is missing")
        if file_crc(path) != record.crc:
            raise ShardFileError(f"{path} does not match its checkpoint (CRC)")
        index = hnswlib.Index(space=SPACES[metric], dim=dim)
        try:
            index.load_index(str(path), max_elements=record.capacity)
        except (RuntimeError, ValueError) as exc:
            raise ShardFileError(f"{path} cannot be loaded: {exc}") from exc
        index.set_ef(cfg.ef_search)
        shard = cls(record.id, index)
        shard.record = record
        return shard

    @property
    def count(self) -> int:
        """Slots used, deleted ones included (hnswlib never frees a slot)."""
        return self.index.element_count

    def add(
        self, vectors: np.ndarray, labels: np.ndarray, new_slots: int, cfg: VectorConfig
    ) -> None:
        """Insert vectors (`new_slots` of them new labels, the rest updates in place)."""
        need = self.count + new_slots
        capacity = self.index.max_elements
        if need > capacity:
            while capacity < need:
                capacity *= 2
            self.index.resize_index(max(need, min(capacity, cfg.shard_max)))
        self.index.add_items(vectors, labels, num_threads=cfg.build_threads)
        self.dirty = True

    def mark_deleted(self, label: int) -> None:
        # Already deleted, or never made it into this file before a crash.
        with contextlib.suppress(RuntimeError):
            self.index.mark_deleted(label)

    def save(self, directory: Path) -> ShardRecord:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{self.id}.{uuid.uuid4().hex[:12]}.hnsw"
        tmp = directory / (name + ".tmp")
        self.index.save_index(str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        crc = file_crc(tmp)
        os.replace(tmp, directory / name)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.record = ShardRecord(self.id, name, self.index.max_elements, crc)
        self.dirty = False
        return self.record
