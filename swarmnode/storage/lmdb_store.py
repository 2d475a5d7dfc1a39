"""The node's durable state: CRDT entries in one LMDB environment.

`Store` opens the environment (one process at a time: a lock file says who
holds it), keeps the node's identity with the data, and composes the two
sides that use it: the `Engine` (`storage/engine.py`), which one thread calls
to apply batches of writes in one transaction each (group commit), and the
`Reader` (`storage/reader.py`), which any thread uses on its own read
transactions. Definitions and counts are read from the `Catalog` the engine
published at its last commit.

Besides the entries themselves every write transaction keeps, in step with
each change: an index of when each entry next needs the sweeper (expiry or
collection), a Merkle index (namespace, leaf, key) -> digest that anti-entropy
reads (its leaf layout is the Merkle tree's, `replication/merkle.py`, and is
stored with the data), a change feed for derived indexes, and per-namespace
counts and bytes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from swarmnode.crdt.codec import decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import HybridLogicalClock
from swarmnode.errors import BadRequest, SwarmError, Unavailable
from swarmnode.replication.merkle import DEFAULT_LEAF_BITS, leaf_of
from swarmnode.storage import layout as L
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.engine import Engine
from swarmnode.storage.namespaces import SYSTEM_NS, NamespaceDef
from swarmnode.storage.ops import Op, OpResult
from swarmnode.storage.reader import Reader

log = logging.getLogger("swarmnode.storage")

FORMAT = 1
SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_REBUILD_BATCH = 10_000


class StoreLocked(SwarmError):
    code = "unavailable"


class Store:
    def __init__(
        self,
        path: Path | str,
        config: StoreConfig | None = None,
        *,
        node_id: str | None = None,
        leaf_bits: int = DEFAULT_LEAF_BITS,
    ) -> None:
        """Open (or create) the store at `path`.

        `node_id` names a store being created (the simulator derives ids from
        its seed); for an existing store it must match, since a node's id is
        fixed with its data. `leaf_bits` is the Merkle trees' leaf layout
        (`replication.merkle.leaf_bits(fanout, depth)`): the Merkle index is
        kept in that layout, and re-keyed once at start if the data was
        written with another.
        """
        self.path = Path(path).resolve()
        self._wanted_id = node_id
        self.config = config or StoreConfig()
        self.leaf_bits = leaf_bits
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = self._acquire_lock()
        # LMDB would create the directory with the file mode (0600): no search bit, so no
        # user but root could open it again.
        (self.path / "store").mkdir(mode=0o700, exist_ok=True)
        try:
            self.env = lmdb.open(
                str(self.path / "store"),
                map_size=self.config.map_size,
                max_dbs=len(L.DB_NAMES) + 1,
                subdir=True,
                sync=self.config.sync,
                metasync=self.config.sync,
                readahead=False,
                max_readers=512,
                mode=0o600,
            )
        except lmdb.Error as exc:
            self._release_lock()
            raise Unavailable(f"cannot open store at {self.path}: {exc}") from exc
        self.db = {name: self.env.open_db(name.encode()) for name in L.DB_NAMES}
        try:
            self.engine = self._open_engine()
        except BaseException:
            self.close()
            raise
        self.reader = Reader(self.env, self.db, self._catalog, self.config.read_cache_bytes)

    # --- opening and closing ------------------------------------------------

    def _acquire_lock(self) -> Any:
        lock_path = self.path / "LOCK"
        fh = open(lock_path, "a+")  # noqa: SIM115 - held open for the life of the store
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise StoreLocked(
                f"data directory {self.path} is in use by another swarmnode (pid {holder}); "
                "stop it or choose another --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _open_engine(self) -> Engine:
        meta = self.db["meta"]
        with self.env.begin(write=True) as txn:
            fmt = txn.get(b"format", db=meta)
            if fmt is None:
                txn.put(b"format", str(FORMAT).encode(), db=meta)
            elif int(fmt) != FORMAT:
                raise Unavailable(f"store format {int(fmt)} at {self.path} is not {FORMAT}")
            node_id = txn.get(b"node_id", db=meta)
            if node_id is None:
                # A new id for new (or wiped) data: reusing an id whose state was
                # lost would let peers mistake new writes for ones they have seen.
                node_id = (self._wanted_id or os.urandom(8).hex()).encode()
                txn.put(b"node_id", node_id, db=meta)
                log.info("event=node_id_created node_id=%s path=%s", node_id.decode(), self.path)
            elif self._wanted_id is not None and node_id.decode() != self._wanted_id:
                raise Unavailable(
                    f"data directory {self.path} belongs to node {node_id.decode()}, not "
                    f"{self._wanted_id}; a node id is chosen when its data is created"
                )
            self.node_id: str = node_id.decode()
            self._check_leaf_layout(txn)
            last = txn.get(b"hlc", db=meta)
            hlc = HybridLogicalClock(self.config.max_clock_offset_ms, int(last) if last else 0)
            seq = txn.get(b"seq", db=meta)
            counts: dict[str, list[int]] = {}
            with txn.cursor(db=meta) as cur:
                if cur.set_range(b"stat:"):
                    for k, v in cur:
                        if not k.startswith(b"stat:"):
                            break
                        counts[k[5:].decode()] = list(msgpack.unpackb(v))
            partition_counts: dict[tuple[str, int], list[int]] = {}
            with txn.cursor(db=meta) as cur:
                if cur.set_range(b"pstat:"):
                    for k, v in cur:
                        if not k.startswith(b"pstat:"):
                            break
                        partition_counts[L.split_partition_stat_key(k)] = list(msgpack.unpackb(v))
            definitions = self._load_definitions(txn)
        return Engine(
            self.env,
            self.db,
            self.config,
            self.node_id,
            hlc,
            seq=int(seq) if seq else 0,
            definitions=definitions,
            counts=counts,
            leaf_bits=self.leaf_bits,
            partition_counts=partition_counts,
        )

    def _load_definitions(self, txn: lmdb.Transaction) -> dict[str, NamespaceDef]:
        definitions: dict[str, NamespaceDef] = {}
        prefix = L.ns_prefix(SYSTEM_NS)
        with txn.cursor(db=self.db["entries"]) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    rec = L.unpack_record(v)
                    entry = decode_entry(rec.header)
                    if entry.reg is not None and not entry.reg.deleted:
                        name = L.names_of(k, rec)[1]
                        definitions[name] = NamespaceDef.from_value(name, entry.reg.value)
        return definitions

    def _check_leaf_layout(self, txn: lmdb.Transaction) -> None:
        """Keep the Merkle index in the trees' leaf layout; re-key it if the data has another.

        Stores written before the layout was recorded used the default one.
        """
        meta = self.db["meta"]
        stored = txn.get(b"merkle_leaf_bits", db=meta)
        had = int(stored) if stored else DEFAULT_LEAF_BITS
        if had != self.leaf_bits:
            log.warning(
                "event=merkle_index_rekey path=%s from_bits=%d to_bits=%d",
                self.path,
                had,
                self.leaf_bits,
            )
            self._rekey_merkle_index(txn)
        if stored is None or had != self.leaf_bits:
            txn.put(b"merkle_leaf_bits", str(self.leaf_bits).encode(), db=meta)

    def _rekey_merkle_index(self, txn: lmdb.Transaction) -> None:
        mdb = self.db["merkle"]
        txn.drop(mdb, delete=False)
        done = 0
        with txn.cursor(db=self.db["entries"]) as cur:
            for k, v in cur:
                rec = L.unpack_record(v)
                ns, key = L.names_of(k, rec)
                txn.put(
                    L.merkle_key(ns, leaf_of(key, self.leaf_bits), key),
                    L.merkle_value(key, rec.digest),
                    db=mdb,
                )
                done += 1
                if done % _REBUILD_BATCH == 0:
                    log.info("event=merkle_index_rekey_progress entries=%d", done)
        log.info("event=merkle_index_rekeyed entries=%d", done)

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None  # type: ignore[assignment]
        self._release_lock()

    # --- what the engine published ------------------------------------------

    def _catalog(self) -> Catalog:
        return self.engine.catalog

    @property
    def catalog(self) -> Catalog:
        """Definitions and counts as of the last commit (never changed once published)."""
        return self.engine.catalog

    @property
    def hlc(self) -> HybridLogicalClock:
        return self.engine.hlc

    @property
    def seq(self) -> int:
        return self.engine.catalog.seq

    def namespace(self, ns: str) -> NamespaceDef:
        return self.engine.catalog.namespace(ns)

    def namespace_names(self) -> list[str]:
        """Namespaces that are defined (and not deleted), built in, or hold entries."""
        return self.engine.catalog.names()

    def ns_stats(self, ns: str) -> dict[str, int]:
        return self.engine.catalog.ns_stats(ns)

    def partition_stats(self, ns: str, partition: int) -> dict[str, int]:
        return self.engine.catalog.partition_stats(ns, partition)

    def node_meta(self, name: str) -> bytes | None:
        """A value the node stored with `SetMeta` (None if never)."""
        with self.env.begin() as txn:
            return txn.get(L.node_meta_key(name), db=self.db["meta"])

    def data_namespaces(self) -> list[str]:
        """Namespaces with stored entries (tombstones included), the system one too."""
        return self.engine.catalog.data_namespaces()

    # --- writes ---------------------------------------------------------------

    def apply(self, ops: list[Op], physical_ms: int) -> list[OpResult]:
        """Apply a batch in one write transaction (one commit, one fsync); one thread only."""
        return self.engine.apply(ops, physical_ms)

    # --- reads ----------------------------------------------------------------

    def read(self) -> lmdb.Transaction:
        return self.reader.read()

    def live_entry(self, ns: str, entry: Entry, now_ms: int) -> bool:
        """Visible now, and not cleared by a namespace delete."""
        return entry.ts > self.namespace(ns).cleared_at and entry.visible(now_ms)

    def get(self, ns: str, key: str, txn: lmdb.Transaction | None = None) -> Entry | None:
        """The full stored entry (every set member loaded), live or not."""
        return self.reader.get(ns, key, txn)

    def get_header(self, ns: str, key: str, txn: lmdb.Transaction) -> Entry | None:
        """The entry with at most one set member loaded (shared through the read cache)."""
        return self.reader.get_header(ns, key, txn)

    def scan(
        self, ns: str, txn: lmdb.Transaction, *, prefix: str = "", after: str | None = None
    ) -> Iterator[tuple[str, Entry]]:
        return self.reader.scan(ns, txn, prefix=prefix, after=after)

    def members(self, ns: str, key: str, txn: lmdb.Transaction) -> list[str]:
        entry = self.get(ns, key, txn)
        return entry.orset.members() if entry and entry.orset else []

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        return self.reader.states(ns, keys)

    def leaf_entries(self, ns: str, first_leaf: int, last_leaf: int) -> list[tuple[str, bytes]]:
        return self.reader.leaf_entries(ns, first_leaf, last_leaf)

    def digests(self, ns: str) -> Iterator[tuple[str, bytes]]:
        return self.reader.digests(ns)

    def changes_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        return self.reader.changes_since(seq, limit)

    def trim_changes(self, upto: int) -> int:
        """Drop change-feed records at or below `upto` minus the configured margin."""
        cutoff = upto - self.config.changes_keep
        if cutoff <= 0:
            return 0
        n = 0
        with self.env.begin(write=True) as txn, txn.cursor(db=self.db["changes"]) as cur:
            if cur.first():
                while cur.key() and L.seq_from_key(cur.key()) <= cutoff:
                    cur.delete()
                    n += 1
        return n

    def read_cache_stats(self) -> dict[str, int]:
        """Items, bytes, capacity, hits and misses of the decoded-entry cache of `get`."""
        return self.reader.cache.stats()

    def disk_bytes(self) -> int:
        info = self.env.info()
        stat = self.env.stat()
        return int(info["last_pgno"] + 1) * int(stat["psize"])

    def snapshot(self, session_id: str, directory: Path) -> Path:
        """A consistent, compacted copy of the store (LMDB copies under one read txn)."""
        if not isinstance(session_id, str) or not SESSION_RE.match(session_id):
            raise BadRequest(
                "session_id must be 1-128 characters of letters, digits and _.- "
                "starting with a letter or digit"
            )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = directory / session_id
        tmp = Path(tempfile.mkdtemp(prefix=f".{session_id}.", dir=directory))
        try:
            self.env.copy(str(tmp), compact=True)
            # A snapshot carries no node id: a node started from it as a backup
            # takes a fresh one, since its old id's later dots live on at peers.
            copy = lmdb.open(str(tmp), max_dbs=len(L.DB_NAMES) + 1, subdir=True)
            try:
                with copy.begin(write=True) as txn:
                    txn.delete(b"node_id", db=copy.open_db(b"meta", txn=txn))
            finally:
                copy.close()
            # Swap in the new copy; the old one is removed only once replaced.
            old = None
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{session_id}.old.", dir=directory))
                final.rename(old / "snapshot")
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
