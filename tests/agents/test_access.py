"""The pure parts of identity and access: tokens, registrations, and who may do what."""

from __future__ import annotations

import pytest

from swarmnode.agents import tokens
from swarmnode.agents.access import ADMIN, NOBODY, Principal, can_define, can_read, can_write
from swarmnode.agents.registrations import (
    Quota,
    Registration,
    Roster,
    check_namespaces,
    lease_key,
    reg_key,
    registration_value,
    revoked_key,
)
from swarmnode.errors import BadRequest
from swarmnode.storage.namespaces import BUILTINS, NamespaceDef, make_definition


def registration(agent: str, roles=(), namespaces=None) -> Registration:
    _, stored = tokens.issue(agent)
    return Registration(agent, tuple(roles), namespaces or {}, Quota(), 60.0, stored, 0, 10**12)


def agent(name: str, **kw) -> Principal:
    return Principal.of(registration(name, **kw))


def test_a_token_matches_only_the_secret_it_was_made_from() -> None:
    token, stored = tokens.issue("ann")
    presented = tokens.parse(token)
    assert presented is not None and presented.agent == "ann"
    assert tokens.matches(presented, stored)
    other, _ = tokens.issue("ann")
    assert not tokens.matches(tokens.parse(other), stored)
    last = "B" if presented.secret.endswith("A") else "A"
    forged = tokens.Presented("ann", stored.token_id, presented.secret[:-1] + last)
    assert not tokens.matches(forged, stored)
    assert presented.secret not in repr(stored.to_value())


@pytest.mark.parametrize(
    "bad", [None, 3, "", "sn_", "sn_ann", "sn_a.b", "xx_a.b.c", "sn_" + "a" * 300]
)
def test_malformed_tokens_are_refused_without_raising(bad) -> None:
    assert tokens.parse(bad) is None


def test_a_private_namespace_is_its_owners_alone_unless_its_readers_say_so() -> None:
    private = NamespaceDef("agent:ann")
    ann, bob = agent("ann"), agent("bob")
    assert can_read(ann, "agent:ann", private) and can_write(ann, "agent:ann", private)
    assert not can_read(bob, "agent:ann", private) and not can_write(bob, "agent:ann", private)
    shared = make_definition("agent:ann", {"readers": ["bob"]}, private)
    assert can_read(bob, "agent:ann", shared) and not can_write(bob, "agent:ann", shared)
    assert can_read(ADMIN, "agent:ann", private) and not can_read(NOBODY, "agent:ann", private)


def test_open_namespaces_stay_open_until_readers_or_writers_are_set() -> None:
    bob = agent("bob")
    assert can_read(bob, "swarm", BUILTINS["swarm"]) and can_write(bob, "swarm", BUILTINS["swarm"])
    closed = make_definition(
        "proj", {"readers": ["role:research"], "writers": []}, NamespaceDef("proj")
    )
    assert not can_read(bob, "proj", closed)
    assert can_read(agent("cy", roles=["research"]), "proj", closed)
    assert not can_write(agent("cy", roles=["research"]), "proj", closed)
    assert can_read(agent("dee", namespaces={"pr*": "read"}), "proj", closed)
    assert can_write(agent("dee", namespaces={"proj": "write"}), "proj", closed)


def test_reserved_namespaces_are_no_agents() -> None:
    assert not can_read(agent("ann", namespaces={"*": "write"}), "_agents", NamespaceDef("_agents"))


def test_only_owners_change_a_namespace_and_builtins_are_the_administrators() -> None:
    ann, bob = agent("ann"), agent("bob")
    owned = NamespaceDef("proj", owner="ann")
    assert can_define(ann, "proj", owned, exists=True)
    assert not can_define(bob, "proj", owned, exists=True)
    assert can_define(bob, "fresh", NamespaceDef("fresh"), exists=False)
    assert not can_define(bob, "swarm", BUILTINS["swarm"], exists=True)
    assert can_define(ann, "agent:ann", NamespaceDef("agent:ann"), exists=False)
    assert not can_define(bob, "agent:ann", NamespaceDef("agent:ann"), exists=False)
    assert agent("root", roles=["admin"]).is_admin


def test_a_revocation_outlives_any_renewal_and_a_new_registration_a_revoked_token() -> None:
    roster = Roster()
    _, first = tokens.issue("ann")
    roster.apply(reg_key("ann"), registration_value((), {}, Quota(), 60, first, 1000))
    roster.apply(revoked_key("ann", first.token_id), {"revoked_ms": 2000})
    roster.apply(lease_key("ann"), {"expires_ms": 10**12})
    assert roster.get("ann").state(3000) == "revoked"
    _, second = tokens.issue("ann")
    roster.apply(reg_key("ann"), registration_value((), {}, Quota(), 60, second, 4000))
    assert roster.get("ann").state(5000) == "active"
    assert roster.get("ann").token.token_id == second.token_id


def test_registration_arguments_are_checked() -> None:
    assert check_namespaces(["a", "b*"]) == {"a": "write", "b*": "write"}
    for bad in ({"a": "admin"}, {"bad name": "read"}, "notes"):
        with pytest.raises(BadRequest):
            check_namespaces(bad)
    for bad in ({"bytes": -1}, {"bytes": True}, {"disk": 1}, [1]):
        with pytest.raises(BadRequest):
            Quota.parse(bad)
