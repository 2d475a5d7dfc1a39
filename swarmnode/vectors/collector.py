"""Pausing Python's cyclic garbage collector while a `vsearch_many` runs.

A batch of 1,000 queries makes tens of thousands of container objects (hits,
per-query lists, reply items) that all live until the batch is answered.
The collector's young passes run every 700 allocations and keep finding
them alive, so they are promoted to the oldest generation, and every batch
or two the promotions trigger a full collection: a walk over the node's
whole heap, most of it the index's own items (100,000 for a 100,000-vector
namespace). Measured on such a node, the collector took about a quarter of
a batch's CPU time.

Reference counting frees every object the moment it is no longer used,
collector or not; the collector only reclaims reference cycles, which a
batch does not make. So the collector is paused while batches run, and
resumed, with its counts as they were, once the last of them finishes. It
is left alone when something else has disabled it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0
"""Batches running with the collector paused by this module."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the duration (across threads: on again after the last)."""
    global _paused
    with _lock:
        if _paused == 0 and not gc.isenabled():
            owned = False
        else:
            owned = True
            _paused += 1
            gc.disable()
    try:
        yield
    finally:
        if owned:
            with _lock:
                _paused -= 1
                if _paused == 0:
                    gc.enable()
