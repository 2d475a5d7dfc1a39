"""Driving a `Store` in tests: apply one op at a chosen physical time, and recount it from LMDB.

Time is explicit: every helper takes the physical milliseconds the writer
thread would have passed, so expiry and collection are tested without waiting.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from swarmnode.errors import SwarmError
from swarmnode.storage import layout as L
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Op, OpResult, Sweep
from swarmnode.storage.views import entry_view

T0 = 1_700_000_000_000
"""Physical time, in ms, at which every test's story starts."""

SECOND = 1000


def apply(store: Store, op: Op, now: int = T0) -> OpResult:
    [result] = store.apply([op], now)
    return result


def ok(store: Store, op: Op, now: int = T0) -> Any:
    """Apply `op`; its result value, or the test fails with the error it got."""
    result = apply(store, op, now)
    assert result.error is None, f"{op} failed: {result.error.code}: {result.error.message}"
    return result.value


def fails(store: Store, op: Op, now: int = T0) -> SwarmError:
    """Apply `op`, which must fail; its error (check `.code`)."""
    result = apply(store, op, now)
    assert result.error is not None, f"{op} succeeded with {result.value!r}"
    return result.error


def sweep_all(store: Store, now: int) -> int:
    """Run the sweeper until nothing is due at `now`; how many entries it handled."""
    handled = 0
    while True:
        result = apply(store, Sweep(limit=1000), now)
        assert result.error is None
        handled += result.value["processed"]
        if not result.more:
            return handled


def view(store: Store, ns: str, key: str, now: int) -> dict[str, Any] | None:
    """What a client reading at `now` sees, or None: absent, expired, deleted or cleared."""
    entry = store.get(ns, key)
    if entry is None or not store.live_entry(ns, entry, now):
        return None
    return entry_view(ns, key, entry, now)


def recount(store: Store, now: int) -> dict[str, dict[str, int]]:
    """Per-namespace stored entries, visible entries and bytes, counted from the raw records."""
    stored: dict[str, int] = defaultdict(int)
    live: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    owner: dict[bytes, str] = {}
    with store.read() as txn:
        with txn.cursor(db=store.db["entries"]) as cur:
            for ekey, record in cur:
                ns, key = L.names_of(ekey, L.unpack_record(record))
                owner[L.member_prefix(ekey)] = ns
                stored[ns] += 1
                nbytes[ns] += len(ekey) + len(record)
                entry = store.get(ns, key, txn)
                assert entry is not None
                live[ns] += store.live_entry(ns, entry, now)
        with txn.cursor(db=store.db["members"]) as cur:
            for mkey, value in cur:
                ns = owner[mkey[: L.DIGEST_SIZE]]
                nbytes[ns] += len(mkey) + len(value)
    return {
        ns: {"stored": stored[ns], "entries": live[ns], "bytes": nbytes[ns]}
        for ns in set(stored) | set(nbytes)
    }


def assert_counts_exact(store: Store, now: int) -> None:
    """The store's own per-namespace figures equal a full recount of its records."""
    counted = recount(store, now)
    names = set(counted) | set(store.data_namespaces()) | set(store.namespace_names())
    zero = {"stored": 0, "entries": 0, "bytes": 0}
    for ns in sorted(names):
        s = store.ns_stats(ns)
        kept = {"stored": s["stored"], "entries": s["entries"], "bytes": s["bytes"]}
        assert kept == counted.get(ns, zero), f"namespace {ns!r}"
        assert s["tombstones"] == s["stored"] - s["entries"]
