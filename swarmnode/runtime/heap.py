"""The node process's policy for Python's cyclic garbage collector.

Reference counting frees almost everything a request makes the moment it is
done with; the cyclic collector only finds reference cycles. With Python's
default thresholds (a young pass every 700 net container allocations, a full
pass whenever the old generation has grown by a quarter) a node under write
load ran about 2,100 young passes and 17 full ones in 60,000 SETs, the full
ones walking every object the node keeps (its catalog, trees, caches, the
vector index's records) at ~55 ms each: about 20 µs of CPU per SET, and the
longest pauses clients saw (benchmarks/results/redis_compare.md).

So a running node (not the simulator, not tests) does what long-running
Python servers do:
- young passes every `YOUNG_THRESHOLD` allocations and older passes rarely
  (`tune`), so a burst of requests is rarely interrupted;
- once started, everything alive is moved out of the collector's sight
  (`settle`: `gc.freeze`), so full passes walk only what was made since.
Cycles are still collected, only less often; the objects frozen at start
live as long as the node does anyway.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net container allocations between young passes (Python's default: 700)."""
OLDER_THRESHOLD = 20
"""Young passes per middle pass, and middle passes per full pass (default: 10 and 10)."""


def tune() -> None:
    """Space the collector's passes out for a long-running server process."""
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)


def settle() -> int:
    """Collect once, then freeze what is alive: the node's start-up state leaves the
    collector's walks for good. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
