"""A cluster of two hundred nodes in virtual time: the protocol stays bounded as n grows.

This is the size at which an O(n^2)-per-tick mistake would show up as minutes;
the run takes a few seconds of CPU.
"""

from __future__ import annotations

from swarmnode.membership import MemberAlive, MemberDead, MembershipConfig, MemberState
from swarmnode.membership.suspicion import suspicion_bounds

from .simnet import SimNet

DEAD = MemberState.DEAD


def test_two_hundred_nodes_converge_and_detect_failures_in_virtual_time():
    config = MembershipConfig.lan()
    net = SimNet(31, config, check_invariants=False)
    addrs = net.start_cluster(200, seeds=3)
    net.run_until(net.converged, within=10 * config.probe_interval, every=1.0)
    victims = [net.crash(addrs[i]).node_id for i in (17, 123)]
    longest = suspicion_bounds(
        config.suspicion_mult, config.suspicion_max_timeout_mult, 200, config.probe_interval
    )[1]
    bound = 3 * config.probe_interval + longest
    net.run_until(lambda: net.all_see(victims, DEAD), within=bound, every=1.0)
    assert len(net.events_of(MemberDead)) == 2 * 198
    assert not net.events_of(MemberAlive)
