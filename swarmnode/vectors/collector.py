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
is left alone when something else has disabled it. Batches that overlap
without a break (several clients) would keep it paused for good, and any
cycles other requests make would pile up: so a batch that ends while others
still run collects in full once the pause has lasted `MAX_PAUSE_S`, about
as often as the collector ran on its own anyway.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

MAX_PAUSE_S = 5.0
"""How long overlapping batches may keep the collector paused before one collects."""

_lock = threading.Lock()
_paused = 0
"""Batches running with the collector paused by this module."""
_since = 0.0
"""When the pause began, or the last collection made during it."""


@contextmanager
def collector_paused(max_pause: float = MAX_PAUSE_S) -> Iterator[None]:
    """The cyclic collector off for the duration (across threads: on again after the last)."""
    global _paused, _since
    with _lock:
        owned = _paused > 0 or gc.isenabled()
        if owned:
            if _paused == 0:
                _since = time.monotonic()
            _paused += 1
            gc.disable()
    try:
        yield
    finally:
        collect = False
        if owned:
            with _lock:
                _paused -= 1
                if _paused == 0:
                    gc.enable()
                elif time.monotonic() - _since >= max_pause:
                    collect = True
                    _since = time.monotonic()
        if collect:
            gc.collect()


def paused_call(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` with the collector paused. The objects `work` made and dropped (a
    batch's hits and read-back verdicts) are freed when it returns, before the collector
    resumes, so its first young pass does not walk them."""
    with collector_paused():
        return work(*args)
