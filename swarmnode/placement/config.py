"""Knobs of sharded namespaces: the `[placement]` section."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, setting


@dataclass(frozen=True)
class PlacementConfig:
    """How placement follows membership, how partitions move, how requests are forwarded."""

    settle: float = setting(2.0, "s", low=0)
    """Seconds a changed member list must hold before placement follows it. A node that
    flaps, or a cluster still forming at start, then moves nothing; every node settles on
    the same list within this plus the time membership takes to spread."""

    dead_grace: float = setting(30.0, "s", low=0)
    """Seconds a dead member keeps its partitions before they move to other nodes. Shorter
    restores R copies sooner after a real failure; longer saves moving data back and forth
    when a node restarts. Reads and writes skip a dead owner meanwhile (writes leave hints
    when no owner answers). A member that leaves says so, and its partitions move at once."""

    handoff_rate: int = setting(16 << 20, "bytes", low=1024)
    """Bytes per second this node sends at most when it hands partitions over (offers and
    states), so a join or a death does not starve client traffic."""

    handoff_concurrency: int = setting(2, "partitions", low=1, high=64)
    """Partitions this node hands over at once (Riak's transfer_limit)."""

    handoff_page_keys: int = setting(512, "keys", low=1, high=100_000)
    """Keys offered per page of a handoff; a page is dropped here once every new owner
    confirmed it holds it."""

    handoff_timeout: float = setting(10.0, "s", low=0, above=True)
    """Seconds without an answer after which a handoff is abandoned (and tried again
    later from where the data still is)."""

    fill_wait: float = setting(10.0, "s", low=0, above=True)
    """Seconds a node that became an owner waits for the partition to be handed to it
    before it asks another owner for a copy (after a death nobody hands it over)."""

    request_timeout: float = setting(2.0, "s", low=0, above=True)
    """Seconds a request forwarded to an owner waits for its answer before the next owner
    is tried (reads) or the outcome is reported unknown."""

    progress_interval: float = setting(5.0, "s", low=0, above=True)
    """Seconds between two progress lines in the log while partitions move."""

    def __post_init__(self) -> None:
        check_settings(self, "placement")

    @classmethod
    def lan(cls) -> PlacementConfig:
        return cls()

    @classmethod
    def local(cls) -> PlacementConfig:
        """Fast timers for clusters on one host and tests."""
        return cls(
            settle=0.5,
            dead_grace=3.0,
            handoff_timeout=3.0,
            fill_wait=2.0,
            request_timeout=1.0,
            progress_interval=1.0,
        )
