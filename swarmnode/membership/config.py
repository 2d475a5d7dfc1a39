"""Every timer and limit of SWIM membership, in one place.

The defaults follow hashicorp/memberlist's LAN profile where it has one, so
figures measured here can be put beside memberlist's; the fields it lacks
(reconnect, retention, seed retries) exist because swarmnode must heal long
partitions by itself instead of forgetting the other half after a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmnode.membership.compat import ClusterSettings
from swarmnode.settings import DERIVED, check_settings, require, setting, show


@dataclass(frozen=True)
class MembershipConfig:
    """Timers are seconds of the runtime's monotonic clock; sizes are bytes."""

    probe_interval: float = setting(0.5, "s", low=0, above=True)
    """One member is probed per interval, and a probe that no ack answered (direct or
    relayed) within it raises a suspicion. Shorter finds failures sooner at the cost of
    one ping (plus ack) per node per interval. Half memberlist's LAN 1 s, so a dead
    member is declared within 5 s (see ARCHITECTURE, Membership timers)."""

    probe_timeout: float = setting(0.3, "s", low=0, above=True)
    """How long to wait for a direct ack before asking others to probe indirectly. Set it
    above the network's p99 round trip; must be below `probe_interval`, and the rest of
    the interval is the indirect probes' time."""

    indirect_checks: int = setting(3, "members", low=0)
    """Members asked to ping_req a target that missed its direct ack. More survives more
    lossy paths (fewer false suspicions) for k extra messages per failed probe."""

    suspicion_mult: int = setting(4, "", low=1)
    """The shortest suspicion lasts mult * max(1, log10(n)) * probe_interval, n the live
    cluster size (memberlist). Raise it on networks that lose bursts of packets."""

    suspicion_max_timeout_mult: int = setting(6, "", low=1)
    """Lifeguard: a suspicion starts at this multiple of the shortest timeout and shrinks
    toward it as independent members confirm it, so a lone slow prober cannot kill anyone
    quickly while a real failure seen by many is declared fast."""

    retransmit_mult: int = setting(4, "", low=1)
    """Each membership fact is piggybacked retransmit_mult * ceil(log10(n + 1)) times.
    Higher spreads more surely under loss, at the price of piggyback bytes."""

    awareness_max_multiplier: int = setting(8, "", low=1)
    """Lifeguard local health: a node that misses acks itself stretches its probe interval
    and timeout up to this factor, so an overloaded node stops accusing healthy peers."""

    max_piggyback_bytes: int = setting(1000, "bytes", low=128, high=65507)
    """Budget of encoded membership facts per message, so every message but push-pull fits
    one 1400-byte datagram together with its header and the encryption envelope."""

    gossip_interval: float = setting(0.2, "s", low=0, above=True)
    """While facts wait to be spread, send them to `gossip_nodes` random members this
    often instead of waiting for probes to carry them (memberlist's gossip loop). Shorter
    spreads news faster; idle clusters send nothing here."""

    gossip_nodes: int = setting(3, "members", low=1)
    """Members per gossip round (memberlist's fanout)."""

    join_retry_interval: float = setting(2.0, "s", low=0, above=True)
    """While no other member is known alive, contact every seed again this often, for
    ever: a node started before its seeds, or cut off from all of them, finds them later."""

    reconnect_interval: float = setting(10.0, "s", low=0, above=True)
    """Push-pull with one random dead or left member this often, so two halves of a
    healed partition find each other again. Shorter heals sooner at one message per node
    per interval."""

    dead_retention: float = setting(6 * 3600.0, "s", low=0, above=True)
    """How long dead and left members are remembered (and retried). It bounds how long a
    partition can last and still heal by itself; memory is one small record per member."""

    push_pull_interval: float = setting(30.0, "s", low=0, above=True)
    """Full state exchange with one random live member, repairing whatever gossip missed.
    Stretched by log2(n / 32) above 32 members (memberlist) to bound the bandwidth."""

    max_pending_relays: int = setting(256, "relays", low=1)
    """Indirect probes this node runs for others at once; requests beyond it are refused so
    a storm of ping_req cannot grow memory without bound."""

    cluster: ClusterSettings = field(default_factory=ClusterSettings, metadata={DERIVED: True})
    """What every member must share with this node (tree shape, tombstone grace, clock
    offset, protocol version). Not set by hand: `Config` derives it from `[antientropy]`
    and `[store]` whenever those change, and peers that differ are refused at join."""

    def __post_init__(self) -> None:
        check_settings(self, "membership")
        require(
            self.probe_timeout < self.probe_interval,
            "membership",
            "probe_timeout",
            self.probe_timeout,
            f"must be less than [membership] probe_interval ({show(self.probe_interval)}): "
            "a probe must be able to time out and go indirect within its interval",
        )

    @classmethod
    def lan(cls) -> MembershipConfig:
        """Defaults for hosts on one LAN (memberlist's DefaultLANConfig timers)."""
        return cls()

    @classmethod
    def local(cls) -> MembershipConfig:
        """Fast timers for nodes on one host (loopback round trips well under 1 ms) and tests."""
        return cls(
            probe_interval=0.2,
            probe_timeout=0.05,
            suspicion_mult=3,
            gossip_interval=0.05,
            join_retry_interval=0.5,
            reconnect_interval=2.0,
            dead_retention=3600.0,
            push_pull_interval=5.0,
        )
