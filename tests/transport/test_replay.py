"""The replay window: no datagram is accepted twice, whatever arrives and however clocks move."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.transport.replay import Freshness, ReplayWindow

W = 10_000
NOW = 1_700_000_000_000

stamps = st.lists(st.integers(-3 * W, 3 * W), min_size=1, max_size=30)
"""Each nonce's stamp, relative to NOW: both are sealed together, so a replay repeats both."""

arrivals = st.lists(
    st.tuples(
        st.integers(0, 29),  # which datagram: few of them, so many arrive again
        st.integers(-3 * W, 3 * W),  # the receiver's clock, relative to NOW: jumps both ways
    ),
    max_size=300,
)


@given(stamps, arrivals, st.integers(1, 12))
def test_no_datagram_is_ever_accepted_twice(stamps, arrivals, capacity):
    window = ReplayWindow(W, capacity)
    accepted: set[int] = set()
    for which, now in arrivals:
        which %= len(stamps)
        nonce = which.to_bytes(12, "big")
        if window.check(nonce, NOW + stamps[which], NOW + now) is Freshness.FRESH:
            assert which not in accepted, "a replay was accepted"
            accepted.add(which)
        assert len(window) <= capacity


@given(st.lists(st.integers(-W, W), min_size=1, max_size=200, unique=True))
def test_within_capacity_and_window_every_first_arrival_passes_and_every_repeat_is_a_replay(
    offsets,
):
    window = ReplayWindow(W, len(offsets))
    nonces = [n.to_bytes(12, "big") for n in range(len(offsets))]
    for nonce, offset in zip(nonces, offsets, strict=True):
        assert window.check(nonce, NOW + offset, NOW) is Freshness.FRESH
    for nonce, offset in zip(nonces, offsets, strict=True):
        assert window.check(nonce, NOW + offset, NOW) is Freshness.REPLAYED


def test_the_window_is_inclusive_at_both_edges():
    window = ReplayWindow(W, 100)
    assert window.check(b"a" * 12, NOW - W, NOW) is Freshness.FRESH
    assert window.check(b"b" * 12, NOW + W, NOW) is Freshness.FRESH
    assert window.check(b"c" * 12, NOW - W - 1, NOW) is Freshness.TOO_OLD
    assert window.check(b"d" * 12, NOW + W + 1, NOW) is Freshness.TOO_NEW


def test_a_datagram_checked_after_the_window_is_too_old_even_if_never_seen():
    window = ReplayWindow(W, 100)
    assert window.check(b"n" * 12, NOW, NOW + W + 1) is Freshness.TOO_OLD


def test_nonces_are_forgotten_once_out_of_the_window_and_stay_refused():
    window = ReplayWindow(W, 100)
    window.check(b"n" * 12, NOW, NOW)
    assert window.check(b"m" * 12, NOW + W + 1, NOW + W + 1) is Freshness.FRESH
    assert len(window) == 1
    # Even if the receiver's clock steps back, the forgotten nonce stays refused.
    assert window.check(b"n" * 12, NOW, NOW) is Freshness.TOO_OLD


def test_a_full_cache_raises_the_floor_instead_of_forgetting_silently():
    window = ReplayWindow(W, 3)
    for i, nonce in enumerate([b"a" * 12, b"b" * 12, b"c" * 12, b"d" * 12]):
        assert window.check(nonce, NOW + i, NOW) is Freshness.FRESH
    assert len(window) == 3
    assert window.evicted == 1
    assert window.floor_ms == NOW
    assert window.check(b"a" * 12, NOW, NOW) is Freshness.TOO_OLD
    assert window.check(b"e" * 12, NOW, NOW) is Freshness.TOO_OLD
    assert window.check(b"f" * 12, NOW + 1, NOW) is Freshness.FRESH


@pytest.mark.parametrize("window_ms, capacity", [(0, 10), (10, 0)])
def test_a_window_or_cache_of_nothing_is_refused(window_ms, capacity):
    with pytest.raises(ValueError):
        ReplayWindow(window_ms, capacity)
