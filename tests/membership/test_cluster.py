"""Whole clusters of `Membership` nodes in virtual time: joining, failures, healing.

Bounds are stated in probe intervals (or in the config's own timers) so they
say what the protocol promises, not what one machine happened to measure.
"""

from __future__ import annotations

import dataclasses

import pytest

from swarmnode.membership import (
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MembershipConfig,
    MemberState,
    MemberSuspect,
    MemberUpdated,
)
from swarmnode.membership.suspicion import suspicion_bounds

from .simnet import SimNet, addr_of

LOCAL = MembershipConfig.local()
ALIVE, SUSPECT, DEAD, LEFT = MemberState


def longest_suspicion(config: MembershipConfig, n: int) -> float:
    return suspicion_bounds(
        config.suspicion_mult, config.suspicion_max_timeout_mult, n, config.probe_interval
    )[1]


def converged_cluster(n: int, seed: int, config: MembershipConfig = LOCAL, **kw) -> SimNet:
    net = SimNet(seed, config, **kw)
    net.start_cluster(n)
    net.run_until(net.converged, within=30 * config.probe_interval)
    return net


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nodes_joining_through_one_seed_converge_on_the_same_member_list(seed):
    net = SimNet(seed)
    addrs = net.start_cluster(20)
    net.run_until(net.converged, within=10 * LOCAL.probe_interval)
    for node in net.nodes.values():
        assert {m.node_id: m.addr for m in node.members()} == {
            f"n{i}": addr for i, addr in enumerate(addrs)
        }
    assert len(net.events_of(MemberJoined)) == 20 * 19
    assert not net.events_of(MemberSuspect)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stopped_node_is_declared_dead_on_every_other_node_within_the_bound(seed):
    net = converged_cluster(20, seed)
    victim = net.crash(addr_of(7))
    # One round robin finds it within n probes of the first prober; then the longest
    # suspicion (it only shrinks with confirmations); then a few intervals of gossip.
    bound = 3 * LOCAL.probe_interval + longest_suspicion(LOCAL, 20) + 5 * LOCAL.probe_interval
    took = net.run_until(lambda: net.all_see([victim.node_id], DEAD), within=bound)
    assert took <= bound
    net.run_for(30)
    assert net.all_see([victim.node_id], DEAD)
    assert not net.events_of(MemberAlive)
    assert {who for _, who, _ in net.events_of(MemberDead)} == {
        node.node_id for node in net.nodes.values()
    }


def test_failure_detection_in_a_lan_cluster_matches_memberlist_timing():
    config = MembershipConfig.lan()
    net = converged_cluster(10, 4, config)
    victim = net.crash(addr_of(3))
    took = net.run_until(lambda: net.all_see([victim.node_id], DEAD), within=60)
    # memberlist's anchor for up to 10 nodes: 1 s probe + 4 s suspicion, after confirmations.
    shortest = config.suspicion_mult * config.probe_interval
    assert shortest <= took <= longest_suspicion(config, 10) + 3 * config.probe_interval


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_suspected_node_that_is_alive_refutes_and_stays_alive(seed):
    net = converged_cluster(12, seed)
    target = addr_of(5)
    target_id = net.nodes[target].node_id
    for other in net.nodes:
        if other != target:
            net.set_link_loss(target, other, 1.0)
    net.run_until(lambda: bool(net.events_of(MemberSuspect, target_id)), within=5)
    for other in net.nodes:
        net.set_link_loss(target, other, 0.0)
    net.run_for(60)
    assert net.events_of(MemberSuspect, target_id)
    assert not net.events_of(MemberDead, target_id)
    assert net.nodes[target].incarnation > 0
    assert net.converged()


@pytest.mark.parametrize("indirect_checks", [3, 0])
def test_indirect_probes_save_a_node_whose_direct_link_drops_packets(indirect_checks):
    config = dataclasses.replace(LOCAL, indirect_checks=indirect_checks)
    net = converged_cluster(8, 5, config)
    prober, target = addr_of(0), addr_of(1)
    target_id = net.nodes[target].node_id
    net.set_link_loss(prober, target, 1.0)
    net.run_for(30)
    suspected_by = {who for _, who, _ in net.events_of(MemberSuspect, target_id)}
    if indirect_checks:
        assert net.counters.by_type["swim.ping_req"] > 0
        assert suspected_by == set()
        assert net.converged()
    else:
        assert net.nodes[prober].node_id in suspected_by


def test_graceful_leave_shows_as_left_not_dead():
    net = converged_cluster(10, 6)
    leaver = addr_of(4)
    leaver_id = net.nodes[leaver].node_id
    net.leave(leaver)
    net.run_for(LOCAL.gossip_interval * 4)
    net.crash(leaver)
    net.run_until(lambda: net.all_see([leaver_id], LEFT), within=2 * LOCAL.probe_interval)
    net.run_for(120)
    assert net.all_see([leaver_id], LEFT)
    assert not net.events_of(MemberDead, leaver_id)
    assert not net.events_of(MemberSuspect, leaver_id)
    assert len(net.events_of(MemberLeft, leaver_id)) == 9


@pytest.mark.parametrize(
    ("config", "split_for"),
    [(LOCAL, 60.0), (MembershipConfig.lan(), 1800.0)],
    ids=["local-1min", "lan-30min"],
)
def test_a_partition_longer_than_the_suspicion_timeout_heals_by_itself(config, split_for):
    net = converged_cluster(10, 8, config, check_invariants=False)
    left, right = [addr_of(i) for i in range(4)], [addr_of(i) for i in range(4, 10)]
    left_ids = [net.nodes[a].node_id for a in left]
    right_ids = [net.nodes[a].node_id for a in right]
    net.partition(left, right)
    net.run_for(split_for)
    for addr in left:
        assert all(net.view(addr)[i] is DEAD for i in right_ids)
    for addr in right:
        assert all(net.view(addr)[i] is DEAD for i in left_ids)
    net.heal()
    bound = 2 * config.reconnect_interval + longest_suspicion(config, 10)
    net.run_until(net.converged, within=bound, every=config.probe_interval / 2)
    net.run_for(5 * config.push_pull_interval)
    assert net.converged()


def test_a_node_restarted_with_a_new_id_at_the_same_address_replaces_the_old_one():
    net = converged_cluster(10, 9)
    addr = addr_of(6)
    old_id = net.crash(addr).node_id
    net.run_for(LOCAL.probe_interval)
    net.add("n6-reborn", addr)
    net.join(addr, [addr_of(0)])
    others = [a for a in net.nodes if a != addr]

    def replaced() -> bool:
        return all(net.view(a).get(old_id) is DEAD for a in others)

    net.run_until(lambda: replaced() and net.converged(), within=10 * LOCAL.probe_interval)
    for node in net.nodes.values():
        assert node.address_of("n6-reborn") == addr
    assert old_id not in net.view(addr)
    net.run_for(30)
    assert replaced() and net.converged()


def test_a_node_restarted_with_the_same_id_returns_with_a_higher_incarnation():
    net = converged_cluster(10, 10)
    addr = addr_of(2)
    node_id = net.crash(addr).node_id
    net.run_until(lambda: net.all_see([node_id], DEAD), within=30)
    dead_at = max(n.member(node_id).incarnation for n in net.nodes.values())
    reborn = net.add(node_id, addr)
    net.join(addr, [addr_of(0)])
    net.run_until(net.converged, within=10 * LOCAL.probe_interval)
    assert reborn.incarnation > dead_at
    assert all(n.member(node_id).incarnation == reborn.incarnation for n in net.nodes.values())
    assert len(net.events_of(MemberAlive, node_id)) == 9


def test_a_node_that_cannot_reach_any_seed_keeps_retrying_until_one_appears():
    net = SimNet(11)
    net.add("late", addr_of(1))
    net.join(addr_of(1), [addr_of(0)])
    net.run_for(600)
    attempts = net.counters.by_type["swim.pp"]
    assert attempts >= 600 / LOCAL.join_retry_interval - 1
    net.add("seed", addr_of(0))
    net.join(addr_of(0), [])
    net.run_until(net.converged, within=2 * LOCAL.join_retry_interval)


def test_metadata_change_reaches_every_member():
    net = converged_cluster(6, 12)
    addr = addr_of(3)
    node = net.nodes[addr]
    net._carry_out(addr, node.update_meta(net.now, {"api": "/run/swarmnode.sock", "v": 2}))
    net.run_for(5 * LOCAL.probe_interval)
    updated = net.events_of(MemberUpdated, node.node_id)
    assert len(updated) == 5
    for other in net.nodes.values():
        info = next(m for m in other.members() if m.node_id == node.node_id)
        assert info.meta == {"api": "/run/swarmnode.sock", "v": 2}


def test_a_node_that_misses_acks_itself_slows_down_and_recovers():
    net = converged_cluster(8, 13)
    sick = addr_of(2)
    for other in net.nodes:
        if other != sick:
            net.set_link_loss(sick, other, 0.8)
    health = []
    for _ in range(40):
        net.run_for(LOCAL.probe_interval)
        health.append(net.nodes[sick].local_health)
    assert max(health) > 0
    for other in net.nodes:
        net.set_link_loss(sick, other, 0.0)
    net.run_for(60)
    assert net.nodes[sick].local_health == 0
    assert net.converged()
