"""The replicated state machine: CAS registers, claims with leases and fencing tokens,
first-wins decisions; determinism, snapshots, and bounded growth."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.consensus import machine as m
from swarmnode.consensus.machine import ABSENT, LeaseFreed, LeaseGranted, StateMachine


class Log:
    """Applies commands at consecutive indexes, as committed entries arrive."""

    def __init__(self, machine: StateMachine | None = None) -> None:
        self.machine = machine or StateMachine()
        self.index = self.machine.applied

    def apply(self, data: bytes) -> m.Applied:
        self.index += 1
        return self.machine.apply(self.index, data)


def test_cas_creates_compares_and_deletes():
    log = Log()
    created = log.apply(m.cas("ns", "k", ABSENT, 1)).result
    assert created == {"ok": True, "exists": True, "value": 1}
    refused = log.apply(m.cas("ns", "k", ABSENT, 2)).result
    assert refused == {"ok": False, "exists": True, "value": 1}
    assert log.apply(m.cas("ns", "k", 1, {"a": 1, "b": [1, 2]})).result["ok"]
    same_map_other_order = {"b": [1, 2], "a": 1}
    deleted = log.apply(m.cas("ns", "k", same_map_other_order, ABSENT)).result
    assert deleted == {"ok": True, "exists": False}
    assert log.machine.read("ns", "k") is ABSENT
    assert log.apply(m.cas("ns", "k", 1, 2)).result == {"ok": False, "exists": False}


def test_cas_compares_types_strictly():
    log = Log()
    log.apply(m.cas("ns", "k", ABSENT, 1))
    assert not log.apply(m.cas("ns", "k", True, 2)).result["ok"]
    assert not log.apply(m.cas("ns", "k", 1.0, 2)).result["ok"]
    assert log.apply(m.cas("ns", "k", 1, 2)).result["ok"]


def test_claim_is_exclusive_and_tokens_strictly_increase_with_every_grant():
    log = Log()
    first = log.apply(m.claim("tasks", "t1", "alice", 1000))
    assert first.result["ok"] and first.result["token"] == 1
    assert first.lease == LeaseGranted("tasks", "t1", 1, 1, 1000)
    refused = log.apply(m.claim("tasks", "t1", "bob", 1000)).result
    assert refused == {"ok": False, "owner": "alice", "token": 1}
    again = log.apply(m.claim("tasks", "t1", "alice", 1000)).result
    assert again["token"] == 1, "the holder's retry renews and keeps its token"
    assert log.apply(m.release("tasks", "t1", "alice", 1)).lease == LeaseFreed("tasks", "t1")
    second = log.apply(m.claim("tasks", "t1", "bob", 1000)).result
    assert second["ok"] and second["token"] > first.result["token"]
    log.apply(m.release("tasks", "t1", "bob", second["token"]))
    third = log.apply(m.claim("tasks", "t1", "alice", 1000)).result
    assert third["token"] > second["token"]


def test_renew_and_release_need_the_owner_and_its_token():
    log = Log()
    token = log.apply(m.claim("t", "k", "alice", 500)).result["token"]
    assert not log.apply(m.renew("t", "k", "bob", token, 500)).result["ok"]
    assert not log.apply(m.renew("t", "k", "alice", token + 1, 500)).result["ok"]
    renewed = log.apply(m.renew("t", "k", "alice", token, 900))
    assert renewed.result == {"ok": True, "owner": "alice", "token": token, "lease_ms": 900}
    assert renewed.lease == LeaseGranted("t", "k", token, log.index, 900)
    assert not log.apply(m.release("t", "k", "bob", token)).result["ok"]
    assert log.machine.holder("t", "k").owner == "alice"


def test_expire_frees_only_the_lease_it_was_proposed_for():
    """The leader proposes expire for the grant or renewal it saw lapse; a renewal or a
    new grant that got into the log first makes that expire do nothing."""
    log = Log()
    token = log.apply(m.claim("t", "k", "alice", 500)).result["token"]
    granted_at = log.index
    log.apply(m.renew("t", "k", "alice", token, 500))
    assert not log.apply(m.expire("t", "k", token, granted_at)).result["ok"]
    assert log.machine.holder("t", "k") is not None
    freed = log.apply(m.expire("t", "k", token, log.index - 1))
    assert freed.result["ok"] and freed.lease == LeaseFreed("t", "k")
    new_token = log.apply(m.claim("t", "k", "bob", 500)).result["token"]
    assert not log.apply(m.expire("t", "k", token, granted_at)).result["ok"]
    assert log.machine.holder("t", "k").token == new_token


def test_first_committed_decision_wins_and_later_ones_get_the_winner():
    log = Log()
    won = log.apply(m.decide("deploy-42", {"choice": "blue"}, 1_000)).result
    assert won == {"ok": True, "winner": {"choice": "blue"}, "index": 1}
    lost = log.apply(m.decide("deploy-42", {"choice": "green"}, 2_000)).result
    assert lost == {"ok": False, "winner": {"choice": "blue"}, "index": 1}
    assert log.machine.decision("deploy-42") == {"choice": "blue"}


def test_decisions_are_pruned_after_their_retention_by_the_proposers_clock():
    log = Log()
    log.apply(m.decide("old", "a", 0))
    log.apply(m.decide("recent", "b", m.DECISION_RETENTION_MS - 10))
    log.apply(m.decide("other", "c", m.DECISION_RETENTION_MS + 5))
    assert log.machine.decision("old") is ABSENT
    assert log.machine.decision("recent") == "b"
    assert log.apply(m.decide("old", "z", m.DECISION_RETENTION_MS + 6)).result["ok"]


def test_released_and_expired_claims_leave_nothing_behind():
    log = Log()
    for i in range(100):
        token = log.apply(m.claim("t", f"k{i}", "a", 100)).result["token"]
        if i % 2:
            log.apply(m.release("t", f"k{i}", "a", token))
        else:
            log.apply(m.expire("t", f"k{i}", token, token))
    assert log.machine.claims == {}


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"op": "launch"}),
        msgpack.packb({"op": "cas", "ns": "n"}),
        msgpack.packb({"op": "cas", "ns": "n", "key": "k", "extra": 1}),
        msgpack.packb({"op": "claim", "ns": "", "key": "k", "owner": "o", "lease_ms": 1}),
        msgpack.packb({"op": "claim", "ns": "n", "key": "k", "owner": "o", "lease_ms": 0}),
        msgpack.packb({"op": "claim", "ns": "n", "key": 5, "owner": "o", "lease_ms": 10}),
        msgpack.packb(
            {"op": "renew", "ns": "n", "key": "k", "owner": "o", "token": -1, "lease_ms": 1}
        ),
        msgpack.packb({"op": "decide", "id": "x", "payload": "p", "at_ms": "now"}),
        msgpack.packb({"op": "cas", "ns": "n", "key": "k", "new": b"x" * (m.MAX_VALUE_BYTES + 1)}),
    ],
)
def test_malformed_commands_get_the_same_error_everywhere_and_change_nothing(data):
    log = Log()
    log.apply(m.cas("ns", "k", ABSENT, 1))
    log.apply(m.claim("t", "k", "o", 10))
    before = state_of(log.machine)
    applied = log.apply(data)
    assert applied.result["ok"] is False and applied.result["error"] == "bad_request"
    assert applied.lease is None
    assert state_of(log.machine) == before


def state_of(machine: StateMachine) -> list:
    """Everything but the applied index."""
    return msgpack.unpackb(machine.snapshot())[2:]


def test_an_entry_is_applied_once_and_in_order():
    machine = StateMachine()
    machine.apply(3, b"")
    with pytest.raises(ValueError):
        machine.apply(3, b"")


names = st.sampled_from(["a", "b", "c"])
commands = st.one_of(
    st.builds(
        m.cas,
        st.just("ns"),
        names,
        st.one_of(st.just(ABSENT), st.integers(0, 3)),
        st.one_of(st.just(ABSENT), st.integers(0, 3)),
    ),
    st.builds(m.claim, st.just("t"), names, names, st.integers(1, 1000)),
    st.builds(m.renew, st.just("t"), names, names, st.integers(1, 30), st.integers(1, 1000)),
    st.builds(m.release, st.just("t"), names, names, st.integers(1, 30)),
    st.builds(m.expire, st.just("t"), names, st.integers(1, 30), st.integers(1, 30)),
    st.builds(m.decide, names, st.integers(0, 5), st.integers(0, 10**12)),
    st.just(b""),
)


@given(st.lists(commands, max_size=30), st.integers(0, 30))
def test_snapshot_then_restore_gives_the_same_future(cmds, cut):
    """Two replicas, one of which is rebuilt from a snapshot half way, give the same
    results and end in the same state: snapshots carry everything apply depends on."""
    whole = Log()
    results_whole = [whole.apply(c) for c in cmds]
    first = Log()
    for c in cmds[:cut]:
        first.apply(c)
    rebuilt = Log(StateMachine.restore(first.machine.snapshot()))
    results_rebuilt = [rebuilt.apply(c) for c in cmds[cut:]]
    assert results_rebuilt == results_whole[cut:]
    assert rebuilt.machine.snapshot() == whole.machine.snapshot()


@given(st.lists(commands, max_size=30))
def test_a_key_has_one_holder_and_each_new_grant_a_larger_token(cmds):
    log = Log()
    last_token: dict[str, int] = {}
    for c in cmds:
        holders = {key: log.machine.holder("t", key) for key in "abc"}
        applied = log.apply(c)
        lease = applied.lease
        if isinstance(lease, LeaseGranted):
            before = holders[lease.key]
            if before is None:
                assert lease.token > last_token.get(lease.key, 0)
            else:
                assert lease.token == before.token, "renewals keep the token"
            last_token[lease.key] = lease.token
            assert log.machine.holder("t", lease.key).token == lease.token


def test_restore_refuses_a_corrupt_snapshot():
    from swarmnode.errors import DecodeError

    with pytest.raises(DecodeError):
        StateMachine.restore(b"\x93\x01")
    assert StateMachine.restore(b"").applied == 0
