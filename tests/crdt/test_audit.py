"""Audit fields: which agent made an entry's latest write, and each MV sibling.

The fields are optional trailing elements of the encoding, so states written
before agents existed keep their exact bytes: a node that reads old data must
compute the same digests as before, or anti-entropy would see every key differ.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import Entry, Version, decode_entry, encode_entry
from swarmnode.crdt.codec import FORMAT_VERSION, packb
from swarmnode.crdt.mvreg import MVRegister
from swarmnode.errors import DecodeError

from .strategies import entries

fuzz = settings(max_examples=200, deadline=None)


def test_a_state_without_agents_has_the_bytes_it_had_before_agents_existed() -> None:
    e = Entry().put_lww(5, "n1", "v")
    assert encode_entry(e) == bytes([FORMAT_VERSION]) + packb(
        [5, [5, "n1", False, "v", None, None, None], None, None, None]
    )


def test_the_writing_agent_round_trips_on_entries_and_mv_siblings() -> None:
    e = Entry().put_mv(7, "n1.7", Version("v", 7, agent="ann")).by("ann")
    back = decode_entry(encode_entry(e))
    assert back == e
    assert back.agent == "ann"
    [(_, version)] = back.mv.siblings()
    assert version.agent == "ann"


@fuzz
@given(entries, entries)
def test_a_join_names_the_agent_of_the_later_write(a: Entry, b: Entry) -> None:
    joined = a.join(b)
    if a.ts > b.ts:
        assert joined.agent == a.agent
    elif b.ts > a.ts:
        assert joined.agent == b.agent
    else:
        named = [x for x in (a.agent, b.agent) if x is not None]
        assert joined.agent == (max(named) if named else None)


@fuzz
@given(entries, st.sampled_from(["ann", "bob", None]))
def test_a_write_after_everything_names_its_own_agent(e: Entry, agent: str | None) -> None:
    delta = Entry(e.ts + 1).put_lww(e.ts + 1, "n1", "new").by(agent)
    assert e.join(delta).agent == agent
    assert delta.join(e).agent == agent


def test_stripping_an_expired_entry_keeps_its_latest_writer() -> None:
    e = Entry().put_lww(5, "n1", "v", expires_at=10).by("ann")
    stripped = e.join(e.expire(20))
    assert stripped.agent == "ann"
    assert not stripped.visible(20)


def test_an_agent_of_the_wrong_type_or_length_is_refused() -> None:
    for agent in (3, "", "x" * 65):
        wire = [5, [5, "n1", False, "v", None, None, None], None, None, None, agent]
        try:
            decode_entry(bytes([FORMAT_VERSION]) + packb(wire))
        except DecodeError:
            continue
        raise AssertionError(f"agent {agent!r} was accepted")


def test_a_sibling_remembers_its_agent_beside_a_concurrent_one() -> None:
    base = MVRegister()
    a = Entry(1, mv=base.write("n1.1", Version("a", 1, agent="ann")))
    b = Entry(1, mv=base.write("n2.1", Version("b", 1, agent="bob")))
    joined = decode_entry(encode_entry(a.join(b)))
    assert sorted(v.agent for _, v in joined.mv.siblings()) == ["ann", "bob"]
