"""The vector layer's own LMDB environment: what each checkpoint saved.

It lives under `<data_dir>/vectors/catalog`, apart from the node's store, for
three reasons. A checkpoint writes up to hundreds of thousands of label
records, and the node's environment has one writer, the group-commit thread
that acknowledges clients: sharing it would stall their writes. Everything
here is derived from the store, so deleting `<data_dir>/vectors/` is always
safe (the next start rebuilds), and a separate environment makes that one
directory. And the store's environment has a fixed number of named databases.

    meta    b"seq" -> the store change-feed position the checkpoint reflects
            b"node_id" -> the store it was taken from; b"format"
    spaces  ns -> {dim, metric, next_label, cleared_at, shards: [{id, file, capacity, crc}]}
    labels  ns 0x00 be64(label) -> [key, shard, digest, expires_at, postings]

A checkpoint is one write transaction, committed only after every shard file
it names is on disk: whatever a crash interrupts, the catalog names a complete
set of files and the label map that matches them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from swarmnode.vectors.filters import Posting

FORMAT = 1
_BE64 = struct.Struct(">Q")


@dataclass
class ShardRecord:
    id: int
    file: str
    capacity: int
    crc: int

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "capacity": self.capacity, "crc": self.crc}


@dataclass
class SpaceRecord:
    dim: int
    metric: str
    next_label: int
    cleared_at: int = 0
    shards: list[ShardRecord] = field(default_factory=list)

    def encode(self) -> bytes:
        return msgpack.packb(
            {
                "dim": self.dim,
                "metric": self.metric,
                "next_label": self.next_label,
                "cleared_at": self.cleared_at,
                "shards": [s.to_wire() for s in self.shards],
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> SpaceRecord:
        d = msgpack.unpackb(raw)
        shards = [ShardRecord(**s) for s in d["shards"]]
        return cls(d["dim"], d["metric"], d["next_label"], d["cleared_at"], shards)


@dataclass
class LabelRecord:
    key: str
    shard: int
    digest: bytes
    expires_at: int | None
    postings: tuple[Posting, ...]

    def encode(self) -> bytes:
        return msgpack.packb(
            [self.key, self.shard, self.digest, self.expires_at, [list(p) for p in self.postings]]
        )

    @classmethod
    def decode(cls, raw: bytes) -> LabelRecord:
        key, shard, digest, expires_at, postings = msgpack.unpackb(raw)
        return cls(key, shard, digest, expires_at, tuple(tuple(p) for p in postings))


def _label_key(ns: str, label: int) -> bytes:
    return ns.encode() + b"\x00" + _BE64.pack(label)


class Catalog:
    def __init__(self, directory: Path, map_size: int) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.env = lmdb.open(
            str(directory / "catalog"), map_size=map_size, max_dbs=4, subdir=True, readahead=False
        )
        self.db = {n: self.env.open_db(n.encode()) for n in ("meta", "spaces", "labels")}
        with self.env.begin(write=True) as txn:
            fmt = txn.get(b"format", db=self.db["meta"])
            if fmt is not None and int(fmt) != FORMAT:
                self._clear(txn)
            txn.put(b"format", str(FORMAT).encode(), db=self.db["meta"])

    def close(self) -> None:
        self.env.close()

    def _clear(self, txn: lmdb.Transaction) -> None:
        for db in self.db.values():
            txn.drop(db, delete=False)

    def reset(self) -> None:
        """Forget every checkpoint: the next start rebuilds from the store."""
        with self.env.begin(write=True) as txn:
            self._clear(txn)
            txn.put(b"format", str(FORMAT).encode(), db=self.db["meta"])

    def position(self) -> tuple[int, str | None]:
        """The checkpoint's store position and the id of the store it came from."""
        with self.env.begin() as txn:
            seq = txn.get(b"seq", db=self.db["meta"])
            node_id = txn.get(b"node_id", db=self.db["meta"])
        return (int(seq) if seq else 0), (node_id.decode() if node_id else None)

    def spaces(self) -> dict[str, SpaceRecord]:
        out = {}
        with self.env.begin() as txn, txn.cursor(db=self.db["spaces"]) as cur:
            for k, v in cur:
                out[k.decode()] = SpaceRecord.decode(v)
        return out

    def labels(self, ns: str) -> Iterator[tuple[int, LabelRecord]]:
        prefix = ns.encode() + b"\x00"
        with self.env.begin() as txn, txn.cursor(db=self.db["labels"]) as cur:
            if not cur.set_range(prefix):
                return
            for k, v in cur:
                if not k.startswith(prefix):
                    return
                yield _BE64.unpack(k[len(prefix) :])[0], LabelRecord.decode(v)

    def commit(
        self,
        seq: int,
        node_id: str,
        spaces: dict[str, SpaceRecord | None],
        labels: list[tuple[str, int, LabelRecord | None]],
        fresh: set[str],
    ) -> None:
        """One checkpoint: space manifests and label changes.

        A space given as None is dropped with its labels; the labels of a
        `fresh` space (rebuilt since the last checkpoint) are replaced whole.
        """
        with self.env.begin(write=True) as txn:
            for ns, record in spaces.items():
                if record is None or ns in fresh:
                    self._drop_labels(txn, ns)
                if record is None:
                    txn.delete(ns.encode(), db=self.db["spaces"])
                else:
                    txn.put(ns.encode(), record.encode(), db=self.db["spaces"])
            for ns, label, rec in labels:
                if rec is None:
                    txn.delete(_label_key(ns, label), db=self.db["labels"])
                else:
                    txn.put(_label_key(ns, label), rec.encode(), db=self.db["labels"])
            txn.put(b"seq", str(seq).encode(), db=self.db["meta"])
            txn.put(b"node_id", node_id.encode(), db=self.db["meta"])

    def _drop_labels(self, txn: lmdb.Transaction, ns: str) -> None:
        prefix = ns.encode() + b"\x00"
        with txn.cursor(db=self.db["labels"]) as cur:
            if cur.set_range(prefix):
                while cur.key() and cur.key().startswith(prefix):
                    cur.delete()
