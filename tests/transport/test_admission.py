"""Inbound admission: pools never exceed their caps, floods shed themselves, bytes add up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarmnode.transport.admission import InboundAdmission, Refusal, StreamCaps

CAPS = StreamCaps(
    unauthenticated=4,
    unauthenticated_per_address=2,
    authenticated=3,
    authenticated_per_address=2,
    buffer_bytes=1000,
    buffer_bytes_per_address=600,
)


def test_a_new_connection_sheds_the_oldest_of_its_address_when_that_address_is_full():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    assert admission.arrive("a1", "10.0.0.1") == []
    assert admission.arrive("b1", "10.0.0.2") == []
    assert admission.arrive("a2", "10.0.0.1") == []
    assert admission.arrive("a3", "10.0.0.1") == ["a1"]
    assert admission.unauthenticated == 3


def test_a_new_connection_sheds_the_oldest_of_all_when_the_pool_is_full():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    for conn, host in [("a", "h1"), ("b", "h2"), ("c", "h3"), ("d", "h4")]:
        assert admission.arrive(conn, host) == []
    assert admission.arrive("e", "h5") == ["a"]
    assert admission.arrive("f", "h6") == ["b"]
    assert admission.unauthenticated == 4


def test_authenticated_connections_have_their_own_pool():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    for conn, host in [("a", "h1"), ("b", "h2"), ("c", "h3")]:
        admission.arrive(conn, host)
        assert admission.authenticate(conn) is None
    for n in range(4):
        admission.arrive(f"idle{n}", f"x{n}")
    assert (admission.authenticated, admission.unauthenticated) == (3, 4)
    admission.arrive("d", "h4")
    assert admission.authenticate("d") is Refusal.INBOUND_CAP
    assert admission.authenticated == 3


def test_authenticated_connections_are_capped_per_address():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    for conn in ("a", "b"):
        admission.arrive(conn, "h1")
        assert admission.authenticate(conn) is None
    admission.arrive("c", "h1")
    assert admission.authenticate("c") is Refusal.ADDRESS_CAP
    admission.leave("a")
    admission.arrive("d", "h1")
    assert admission.authenticate("d") is None


def test_frames_are_refused_by_the_cap_they_would_break():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    for conn, host in [("a1", "h1"), ("a2", "h1"), ("b", "h2")]:
        admission.arrive(conn, host)
        admission.authenticate(conn)
    assert admission.hold("a1", 500) is None
    assert admission.hold("a2", 200) is Refusal.ADDRESS_BUFFER_CAP
    assert admission.hold("b", 501) is Refusal.BUFFER_CAP
    assert admission.hold("b", 500) is None
    assert admission.buffered_bytes == 1000
    admission.release("a1")
    assert admission.hold("a2", 200) is None
    assert (admission.buffered_bytes, admission.buffered_bytes_peak) == (700, 1000)


def test_a_hello_held_before_authentication_is_released_by_authenticating():
    admission: InboundAdmission[str] = InboundAdmission(CAPS)
    admission.arrive("a", "h1")
    assert admission.hold("a", 516) is None
    assert admission.buffered_bytes == 516
    admission.authenticate("a")
    assert admission.buffered_bytes == 0


actions = st.lists(
    st.tuples(
        st.sampled_from(["arrive", "authenticate", "hold", "release", "leave"]),
        st.integers(0, 9),  # connection
        st.integers(0, 2),  # its address
        st.integers(1, 700),  # bytes
    ),
    max_size=200,
)


@given(actions)
def test_caps_hold_and_bytes_add_up_whatever_happens(steps):
    admission: InboundAdmission[int] = InboundAdmission(CAPS)
    live: dict[int, str] = {}
    pending: set[int] = set()
    authed: set[int] = set()
    held: dict[int, int] = {}
    for action, conn, address, nbytes in steps:
        host = f"h{address}"
        if action == "arrive" and conn not in live:
            for old in admission.arrive(conn, host):
                pending.discard(old)
                live.pop(old)
                held.pop(old, None)
            live[conn] = host
            pending.add(conn)
        elif action == "authenticate" and conn in pending:
            pending.discard(conn)
            held.pop(conn, None)
            if admission.authenticate(conn) is None:
                authed.add(conn)
            else:
                live.pop(conn)
        elif action == "hold" and conn in live and conn not in held:
            if admission.hold(conn, nbytes) is None:
                held[conn] = nbytes
        elif action == "release" and conn in live:
            admission.release(conn)
            held.pop(conn, None)
        elif action == "leave":
            admission.leave(conn)
            live.pop(conn, None)
            pending.discard(conn)
            authed.discard(conn)
            held.pop(conn, None)
        assert admission.unauthenticated == len(pending) <= CAPS.unauthenticated
        assert admission.authenticated == len(authed) <= CAPS.authenticated
        assert admission.buffered_bytes == sum(held.values())
        authed_bytes = sum(n for c, n in held.items() if c in authed)
        assert authed_bytes <= CAPS.buffer_bytes
        for h in {f"h{a}" for a in range(3)}:
            assert sum(1 for c in pending if live[c] == h) <= CAPS.unauthenticated_per_address
            assert sum(1 for c in authed if live[c] == h) <= CAPS.authenticated_per_address
            by_host = sum(n for c, n in held.items() if c in authed and live[c] == h)
            assert by_host <= CAPS.buffer_bytes_per_address
