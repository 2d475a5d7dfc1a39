"""Reading a snapshot made by `persist`: a compacted LMDB copy of the store.

A snapshot is opened read-only and without locking, so it can be inspected
while the node runs, and restoring one never touches the live environment
except through ordinary writes.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lmdb
import msgpack

from swarmnode.crdt.codec import decode_dots, decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.errors import NotFound, Unavailable
from swarmnode.storage import layout as L
from swarmnode.storage.namespaces import reserved

# What reading damaged snapshot bytes can raise: LMDB's own checks (MDB_CORRUPTED,
# a missing database), and every decoder's errors (DecodeError and msgpack's
# are ValueErrors; msgpack raises TypeError for some malformed maps).
_DAMAGE = (lmdb.Error, ValueError, TypeError)


_META = struct.Struct("<16xII8xQ")  # page header, then magic, version, address, map size
_META_PSIZE = 16 + 24  # FREE_DBI's md_pad holds the page size
_META_LAST_PG = 16 + 120
_MAGIC = 0xBEEFC0DE


def _truncation(path: Path) -> str | None:
    """Why LMDB would read past the end of this file, or None.

    LMDB maps the file and trusts the meta pages' last page number: a file
    shorter than that (a snapshot cut short by a full disk or a copy that was
    interrupted) is read beyond its end, and the process dies of SIGBUS
    instead of getting an error. Pages beyond the last one are never read
    (LMDB checks page numbers against it), so checking the length here is
    enough to turn that crash into an error.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_META_LAST_PG + 8)
            if len(head) < _META_LAST_PG + 8:
                return "shorter than one LMDB meta page"
            psize = struct.unpack_from("<I", head, _META_PSIZE)[0]
            if psize < 512 or psize > 65536 or psize & (psize - 1):
                return f"meta page gives an impossible page size {psize}"
            size = f.seek(0, os.SEEK_END)
            last = 0
            for at in (0, psize):
                f.seek(at)
                page = f.read(_META_LAST_PG + 8)
                if len(page) < _META_LAST_PG + 8 or _META.unpack_from(page)[0] != _MAGIC:
                    return f"meta page at {at} is not an LMDB meta page"
                last = max(last, struct.unpack_from("<Q", page, _META_LAST_PG)[0])
    except OSError as exc:
        return f"cannot read it: {exc}"
    if (last + 1) * psize > size:
        return f"{size} bytes, but its meta pages use {(last + 1) * psize} (file cut short)"
    return None


def verify_in_child(path: Path, timeout: float = 600.0) -> None:
    """Read the whole snapshot once in a child process; Unavailable if that fails or dies.

    LMDB trusts the pages it reads: a damaged page can point a read past the
    end of the mapped file (SIGBUS) or anywhere inside it, and no error is
    raised that Python could catch. Reading the snapshot first in a process
    of its own turns such a crash into an error for the one request, instead
    of the end of the node. It costs one extra read of the snapshot, which
    only `restore` pays.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-m", "swarmnode.storage.snapshot", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"snapshot {path}: reading it took over {timeout:g}s") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise Unavailable(f"snapshot {path} is damaged: reading it crashed LMDB ({name})")
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise Unavailable(why[0])


class SnapshotReader:
    """A snapshot, read-only. A missing one is NotFound; a damaged one (a bad disk, a file
    from elsewhere) is Unavailable naming it, whether at opening or while reading.

    `verify` (the default) reads it once in a child process first (`verify_in_child`);
    only callers that already did, or that feed it bytes on purpose, turn it off.
    """

    def __init__(self, path: Path, *, verify: bool = True) -> None:
        if not (path / "data.mdb").exists():
            raise NotFound(f"no snapshot at {path}")
        self.path = path
        problem = _truncation(path / "data.mdb")
        if problem is not None:
            raise Unavailable(f"snapshot {path} is damaged: {problem}")
        if verify:
            verify_in_child(path)
        try:
            self.env = lmdb.open(
                str(path), readonly=True, lock=False, max_dbs=len(L.DB_NAMES) + 1, subdir=True
            )
        except lmdb.Error as exc:
            raise Unavailable(f"cannot open snapshot {path}: {exc}") from exc
        try:
            self.entries = self.env.open_db(b"entries", create=False)
            self.members = self.env.open_db(b"members", create=False)
        except _DAMAGE as exc:
            self.env.close()
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> Unavailable:
        return Unavailable(f"snapshot {self.path} is damaged: {exc}")

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries_of(self, ns: str | None = None) -> Iterator[tuple[str, str, Entry]]:
        """Every (namespace, key, full entry) of the snapshot, reserved namespaces left out
        (definitions, and agent registrations, whose revocations a restore must not undo)."""
        try:
            yield from self._entries(ns)
        except _DAMAGE as exc:
            raise self._damaged(exc) from exc

    def _entries(self, ns: str | None) -> Iterator[tuple[str, str, Entry]]:
        with self.env.begin() as txn, txn.cursor(db=self.entries) as cur:
            start = L.ns_prefix(ns) if ns else b""
            ok = cur.set_range(start) if start else cur.first()
            while ok:
                ekey = bytes(cur.key())
                if ns and not ekey.startswith(start):
                    break
                rec = L.unpack_record(bytes(cur.value()))
                entry_ns, key = L.names_of(ekey, rec)
                if not reserved(entry_ns):
                    entry = decode_entry(rec.header)
                    if entry.orset is not None:
                        self._load_members(txn, ekey, entry)
                    yield entry_ns, key, entry
                ok = cur.next()

    def _load_members(self, txn: lmdb.Transaction, ekey: bytes, entry: Entry) -> None:
        prefix = L.member_prefix(ekey)
        with txn.cursor(db=self.members) as cur:
            ok = cur.set_range(prefix)
            while ok and cur.key().startswith(prefix):
                member, raw = L.unpack_member(bytes(cur.key()), bytes(cur.value()))
                entry.orset.elems[member] = decode_dots(msgpack.unpackb(raw))
                ok = cur.next()


def _main(argv: list[str]) -> int:
    """The child of `verify`: read every entry of the snapshot at argv[0]."""
    try:
        with SnapshotReader(Path(argv[0]), verify=False) as reader:
            for _entry in reader.entries_of():
                pass
    except (NotFound, Unavailable) as exc:
        print(exc.message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
