"""MV register: siblings are exactly the concurrent writes; a write replaces what its writer saw."""

from __future__ import annotations

import math

from swarmnode.crdt import Entry, MVRegister, Version, decode_entry, encode_entry


def values(reg: MVRegister) -> list:
    return [v.value for _, v in reg.siblings()]


def write(reg: MVRegister, node: str, value: object, ts: int = 1) -> MVRegister:
    return reg.write(node, Version(value, ts))


def test_concurrent_writes_are_siblings_until_a_write_that_saw_both() -> None:
    a = write(MVRegister(), "a", "from a", ts=2)
    b = write(MVRegister(), "b", "from b", ts=1)
    both = a.join(b)
    assert values(both) == ["from b", "from a"]
    resolved = both.join(write(both, "c", "resolved"))
    assert values(resolved) == ["resolved"]


def test_a_write_supersedes_only_what_its_writer_had_seen() -> None:
    first = write(MVRegister(), "a", "first")
    at_b = MVRegister().join(first)
    concurrent = write(MVRegister(), "c", "concurrent")
    over_first = write(at_b, "b", "over first")
    merged = first.join(concurrent).join(over_first)
    assert sorted(values(merged)) == ["concurrent", "over first"]


def test_a_superseding_write_that_arrives_first_keeps_the_old_version_out() -> None:
    first = write(MVRegister(), "a", "first")
    second = write(MVRegister().join(first), "b", "second")
    late = MVRegister().join(second).join(first)
    assert values(late) == ["second"]
    assert late == MVRegister().join(first).join(second)


def test_clear_removes_what_it_saw_and_a_concurrent_write_survives() -> None:
    seen = write(MVRegister(), "a", "seen")
    cleared = seen.join(seen.clear())
    assert values(cleared) == []
    unseen = write(seen, "b", "unseen")
    assert values(seen.join(unseen).join(seen.clear())) == ["unseen"]


def test_a_reused_dot_resolves_to_the_same_version_from_either_side() -> None:
    # Two versions under one dot: a node that lost its state, or a key rewritten
    # after its tombstone was collected. Replicas must still pick the same one.
    one = write(MVRegister(), "a", 1)
    true = write(MVRegister(), "a", True)
    assert one.join(true) == true.join(one)
    assert encode_entry(Entry(mv=one.join(true))) == encode_entry(Entry(mv=true.join(one)))


def test_versions_are_equal_exactly_when_their_bytes_are() -> None:
    assert Version(1, 5) != Version(True, 5)
    assert Version(1, 5) != Version(1.0, 5)
    assert Version(math.nan, 5) == Version(math.nan, 5)


def test_a_state_holding_nan_equals_its_decoded_copy_and_their_join() -> None:
    # A replication layer forwards a state only if a join changed it; a NaN
    # that compared unequal to itself would be forwarded forever.
    state = Entry().join(Entry().put_mv(1, "a", Version(math.nan, 1)))
    copy = decode_entry(encode_entry(state))
    assert copy == state
    assert copy.join(state) == state


def test_put_mv_stores_values_in_canonical_form() -> None:
    one = Entry().put_mv(1, "a", Version({"b": 1, "a": (2,)}, 1, meta={}))
    other = Entry().put_mv(1, "a", Version({"a": [2], "b": 1}, 1))
    assert encode_entry(one) == encode_entry(other)
    assert decode_entry(encode_entry(one)) == one
