"""Every timer and limit of the Raft group, in one place.

Raft itself counts time in ticks: the runtime calls `Raft.tick()` once every
`tick_interval` seconds, and every timeout below is a whole number of ticks.
So the algorithm never reads a clock, and the simulator replays a run exactly
by calling `tick()` at virtual times. The defaults are etcd's (100 ms ticks,
heartbeat every tick, election after 10 ticks) with the election timeout drawn
at random from a range, as the Raft paper's section 9.3 recommends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from swarmnode.settings import check_settings, setting


@dataclass(frozen=True)
class RaftConfig:
    """Ticks are calls of `Raft.tick()`; sizes are bytes; times in seconds."""

    tick_interval: float = 0.1
    """s, default 0.1. How often the runtime calls `tick()`. Raft never reads it; it is
    here so the runtime and the voter policy convert ticks to seconds in one place."""

    election_ticks_min: int = 10
    """ticks, default 10 (1 s). Lower end of the randomized election timeout, and the
    check-quorum period: a leader that has not heard from a quorum within this many ticks
    steps down, and a follower that heard from its leader within it ignores vote requests.
    Must exceed `heartbeat_ticks` several times over, or followers start elections while a
    healthy leader's heartbeats are still on their way."""

    election_ticks_max: int = 20
    """ticks, default 20 (2 s). Upper end (inclusive) of the randomized election timeout.
    A wider range makes split votes rarer (Raft paper, Figure 16) at the cost of a longer
    worst case before a crashed leader is replaced."""

    heartbeat_ticks: int = 1
    """ticks, default 1. A leader sends heartbeats this often. They carry the commit index
    and ReadIndex confirmations, and they pace retries to followers in probe state."""

    pre_vote: bool = True
    """default on. A would-be candidate first asks whether it could win (thesis 9.6) and
    raises its term only if a quorum says yes, so a node that was cut off does not force
    the healthy leader out with a higher term when it comes back."""

    check_quorum: bool = True
    """default on. A leader that has not heard from a quorum for `election_ticks_min` ticks
    steps down, and followers that heard from a leader recently ignore (pre)votes. Needed for
    ReadIndex to be safe against a deposed leader that does not know it yet."""

    max_append_entries: int = 256
    """entries, default 256. Most entries in one append message (batching)."""

    max_append_bytes: int = 256 << 10
    """bytes, default 256 KiB. Most entry data in one append message; one larger entry is
    still sent alone. Smaller keeps heartbeats and votes from queueing behind big appends."""

    max_inflight_appends: int = 64
    """messages, default 64. Appends sent to a follower in replicate state and not yet
    acknowledged; the leader stops sending to that follower at the bound (flow control)."""

    max_uncommitted_bytes: int = 16 << 20
    """bytes, default 16 MiB. Proposals are refused while the leader's log holds this much
    entry data that is not committed yet, so a leader cut off from its quorum cannot grow
    without bound."""

    max_apply_bytes: int = 8 << 20
    """bytes, default 8 MiB. Most committed entry data handed out in one Ready; one larger
    entry is still handed out alone. Bounds the work and memory of one apply batch."""

    max_pending_reads: int = 4096
    """requests, default 4096. ReadIndex requests waiting for their heartbeat round; more
    are refused, so a flood of reads cannot grow memory without bound."""

    snapshot_threshold: int = 10_000
    """entries, default 10,000. `Raft.snapshot_due()` is true once this many entries were
    applied since the last snapshot; the runtime then snapshots the state machine and calls
    `Raft.compact`. Lower bounds memory and restart replay; higher snapshots less often."""

    snapshot_trailing_entries: int = 1_000
    """entries, default 1,000. Log entries kept behind a snapshot, so a follower that is only
    a little behind catches up from the log instead of receiving the whole snapshot."""

    snapshot_chunk_bytes: int = 1 << 20
    """bytes, default 1 MiB. A snapshot is sent in chunks of this size, one chunk in flight
    at a time (the paper's InstallSnapshot with offsets). Chunks above the transport's
    datagram size travel over its streams."""

    max_snapshot_bytes: int = 1 << 30
    """bytes, default 1 GiB. A follower refuses to assemble a larger snapshot, so a peer
    cannot make it buffer without bound."""

    voter_dead_time: float = 300.0
    """s, default 300. A voter dead this long is replaced (see `voters.py`). Shorter heals
    the group's fault tolerance sooner; too short replaces voters during routine restarts."""

    max_voters: int = 5
    """voters, default 5. Voters chosen when the group forms and kept by the voter policy.
    Five survive two failures; more slow every commit for little gain."""

    standby_learners: int = 2
    """nodes, default 2. Live non-voters kept as learners (replicas that receive committed
    entries without voting), ready to replace a dead voter without a long catch-up."""

    lease_expiry_margin: float = 0.1
    """s, default 0.1. Extra time the leader waits after a claim's lease ends before it
    proposes to free the key, covering clock-rate differences between the client and the
    leader. Raise it where clocks drift more than margin / lease."""

    def __post_init__(self) -> None:
        _positive_float("tick_interval", self.tick_interval)
        _at_least("heartbeat_ticks", self.heartbeat_ticks, 1)
        _at_least("election_ticks_min", self.election_ticks_min, self.heartbeat_ticks + 1)
        _at_least("election_ticks_max", self.election_ticks_max, self.election_ticks_min)
        _at_least("max_append_entries", self.max_append_entries, 1)
        _at_least("max_append_bytes", self.max_append_bytes, 1)
        _at_least("max_inflight_appends", self.max_inflight_appends, 1)
        _at_least("max_uncommitted_bytes", self.max_uncommitted_bytes, 1)
        _at_least("max_apply_bytes", self.max_apply_bytes, 1)
        _at_least("max_pending_reads", self.max_pending_reads, 1)
        _at_least("snapshot_threshold", self.snapshot_threshold, 1)
        _at_least("snapshot_trailing_entries", self.snapshot_trailing_entries, 0)
        _at_least("snapshot_chunk_bytes", self.snapshot_chunk_bytes, 1)
        _at_least("max_snapshot_bytes", self.max_snapshot_bytes, 1)
        _positive_float("voter_dead_time", self.voter_dead_time)
        _at_least("max_voters", self.max_voters, 1)
        _at_least("standby_learners", self.standby_learners, 0)
        if not (self.lease_expiry_margin >= 0 and self.lease_expiry_margin < float("inf")):
            raise ValueError(
                f"lease_expiry_margin must be in [0, inf) seconds, got {self.lease_expiry_margin}"
            )

    @classmethod
    def lan(cls) -> RaftConfig:
        """Hosts on one LAN: 100 ms ticks, elections after 1 to 2 s (etcd's defaults), and
        heartbeats every 300 ms rather than etcd's 100 ms. Heartbeats only say the leader
        lives (a commit goes out with an append at once, a ReadIndex round sends its own
        heartbeat), so on an idle cluster they were most of the traffic: a third of them
        still gives over three per minimum election timeout (the Raft paper's method uses
        two), and a dead leader is found no later, since a follower's timeout runs from
        the last heartbeat it heard."""
        return cls(heartbeat_ticks=3)

    @classmethod
    def local(cls) -> RaftConfig:
        """Nodes on one host and tests: 10 ms ticks, elections after 150 to 300 ms (the
        Raft paper's recommended range), heartbeats every 30 ms."""
        return cls(
            tick_interval=0.01,
            election_ticks_min=15,
            election_ticks_max=30,
            heartbeat_ticks=3,
            voter_dead_time=30.0,
        )


def _at_least(name: str, value: int, low: int) -> None:
    if type(value) is not int or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _positive_float(name: str, value: float) -> None:
    if type(value) not in (int, float) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


@dataclass
class ConsensusConfig:
    """The `[consensus]` section: the group that settles what merging cannot (cas, claims,
    conflicts of `consensus` namespaces). Raft's own timing follows the profile (`lan`:
    100 ms ticks, heartbeats every 300 ms, elections after 1 to 2 s; `local`: 10 ms ticks,
    150 to 300 ms)."""

    enabled: bool = setting(True)
    """Run the consensus group. Off, cas/claim/linearizable reads answer `unavailable` and
    `consensus` namespaces keep concurrent writes as siblings, as `mv` does."""

    bootstrap_expect: int = setting(1, "nodes", low=1, high=1000)
    """Live members a node must see before the lowest id among them forms the group. 1
    lets a lone node run cas at once; set it to the cluster's size (or a majority of it)
    when several nodes start together, so a partitioned start cannot form two groups."""

    bootstrap_wait: float = setting(3.0, "s", low=0, above=True)
    """Seconds the membership view must stay unchanged before a group is formed; longer
    than the leader's announcements, so a node that joins an existing cluster hears of its
    group first."""

    command_timeout: float = setting(3.0, "s", low=0, above=True)
    """Seconds a cas, claim or linearizable read may wait for the group before it is
    answered `unavailable` (its outcome unknown). About one or two election timeouts."""

    voter_dead_time: float = setting(300.0, "s", low=0, above=True)
    """Seconds a voter must have been dead before a live member replaces it."""

    max_voters: int = setting(5, "nodes", low=1, high=9)
    """Voters of the group (an odd number at most this); the other members are learners."""

    def __post_init__(self) -> None:
        check_settings(self, "consensus")

    @classmethod
    def lan(cls) -> ConsensusConfig:
        return cls()

    @classmethod
    def local(cls) -> ConsensusConfig:
        return cls(bootstrap_wait=0.5, command_timeout=1.0, voter_dead_time=30.0)

    def raft(self, profile: str) -> RaftConfig:
        base = RaftConfig.local() if profile == "local" else RaftConfig.lan()
        return replace(base, voter_dead_time=self.voter_dead_time, max_voters=self.max_voters)
