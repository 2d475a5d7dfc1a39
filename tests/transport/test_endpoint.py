"""Endpoints on real loopback sockets: delivery, the stream path, keys and failure counting."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket

import pytest

from swarmnode.transport import (
    STAT_KEYS,
    GossipEndpoint,
    InsecureBindError,
    Keyring,
    TransportConfig,
    open_envelope,
    unpack_datagram,
)

from .conftest import DEADLINE, eventually

KEY = os.urandom(32)


async def test_two_endpoints_exchange_many_small_messages(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    for start in range(0, 1000, 25):
        batch = [{"t": "delta", "n": n} for n in range(start, start + 25)]
        a.endpoint.send(b.address, batch)
        b.endpoint.send(a.address, [{**m, "back": True} for m in batch])
        await asyncio.sleep(0)
    await eventually(lambda: len(a.inbox) == 1000 and len(b.inbox) == 1000)
    assert sorted(m["n"] for m in b.messages()) == list(range(1000))
    assert sorted(m["n"] for m in a.messages()) == list(range(1000))
    assert {sender for sender, _ in b.inbox} == {a.address}
    assert {sender for sender, _ in a.inbox} == {b.address}
    assert a.stat("datagrams_out") <= 1000 // 25 * 2
    assert b.stat("datagrams_in") == a.stat("datagrams_out")
    assert b.stat("bytes_in") == a.stat("bytes_out")


async def test_a_datagram_leaves_in_the_loop_turn_it_is_sent_when_none_waits(make_node):
    """A call or its answer is on the socket before the sender runs anything else (a
    scatter sends its calls, then searches its own share on the loop)."""
    a, b = await make_node([KEY]), await make_node([KEY])
    a.endpoint.send(b.address, [{"t": "call", "n": 1}])
    assert a.stat("datagrams_out") == 1  # no await in between: the socket has it
    await eventually(lambda: b.messages() == [{"t": "call", "n": 1}])


async def test_datagrams_on_the_wire_never_exceed_max_datagram(make_node):
    a = await make_node([KEY], config=TransportConfig(max_datagram=600))
    loop = asyncio.get_running_loop()
    rng = random.Random(4)
    batch = [{"t": "delta", "pad": rng.randbytes(rng.randrange(500))} for _ in range(100)]
    sizes, opened = [], []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.setblocking(False)
        a.endpoint.send(raw.getsockname(), batch)
        async with asyncio.timeout(DEADLINE):
            while len(opened) < len(batch):
                datagram = await loop.sock_recv(raw, 65536)
                sizes.append(len(datagram))
                opened += unpack_datagram(open_envelope(datagram, Keyring([KEY])).payload)
    assert max(sizes) <= 600
    assert sorted(m["pad"] for m in opened) == sorted(m["pad"] for m in batch)


async def test_one_mebibyte_message_arrives_intact_over_the_stream(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    value = os.urandom(1 << 20)
    a.endpoint.send(b.address, [{"t": "ping"}, {"t": "delta", "value": value}])
    await eventually(lambda: len(b.inbox) == 2)
    by_type = {m["t"]: (sender, m) for sender, m in b.inbox}
    assert by_type["delta"] == (a.address, {"t": "delta", "value": value})
    assert by_type["ping"] == (a.address, {"t": "ping"})
    await eventually(lambda: a.stat("stream_messages_out") == 1)  # the ACK comes after delivery
    assert b.stat("stream_messages_in") == 1
    assert b.stat("stream_bytes_in") == a.stat("stream_bytes_out") > 1 << 20


async def test_large_messages_to_one_peer_arrive_in_order(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    blobs = [os.urandom(100_000) for _ in range(8)]
    for index, blob in enumerate(blobs):
        a.endpoint.send(b.address, [{"t": "state", "i": index, "blob": blob}])
    await eventually(lambda: len(b.inbox) == 8)
    assert [(m["i"], m["blob"]) for m in b.messages()] == list(enumerate(blobs))


async def test_stream_survives_the_peer_restarting_on_the_same_port(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    a.endpoint.send(b.address, [{"t": "state", "blob": b"1" * 5000}])
    await eventually(lambda: len(b.inbox) == 1)
    port = b.address[1]
    await b.endpoint.close()
    b2 = await make_node([KEY], bind=("127.0.0.1", port))
    a.endpoint.send(b2.address, [{"t": "state", "blob": b"2" * 5000}])
    await eventually(lambda: len(b2.inbox) == 1)
    assert b2.messages()[0]["blob"] == b"2" * 5000
    assert a.stat("send_errors") == 0


async def test_wrong_key_traffic_is_dropped_as_auth_and_delivers_nothing(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    intruder = await make_node([os.urandom(32)])
    intruder.endpoint.send(a.address, [{"t": "delta", "evil": True}])
    intruder.endpoint.send(a.address, [{"t": "delta", "blob": os.urandom(10_000)}])
    await eventually(lambda: a.stat("dropped_auth") == 2 and intruder.stat("send_errors") == 1)
    assert a.inbox == []
    b.endpoint.send(a.address, [{"t": "ping"}])
    await eventually(lambda: len(a.inbox) == 1)
    assert a.inbox == [(b.address, {"t": "ping"})]


async def test_rotation_old_key_accepted_by_new_and_old_ring_but_not_by_new_only(make_node):
    new = os.urandom(32)
    old_node = await make_node([KEY])
    rotating = await make_node([new, KEY])
    new_only = await make_node([new])
    for target in (rotating, new_only):
        old_node.endpoint.send(target.address, [{"t": "ping"}, {"t": "big", "v": b"x" * 4000}])
    await eventually(lambda: len(rotating.inbox) == 2 and new_only.stat("dropped_auth") == 2)
    assert new_only.inbox == []
    rotating.endpoint.send(new_only.address, [{"t": "from-rotating"}])
    await eventually(lambda: len(new_only.inbox) == 1)


async def test_rotation_by_reloading_keyrings_never_stops_traffic(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    new = os.urandom(32)

    async def exchange(expected: int) -> None:
        a.endpoint.send(b.address, [{"t": "a"}, {"t": "big", "v": b"a" * 3000}])
        b.endpoint.send(a.address, [{"t": "b"}, {"t": "big", "v": b"b" * 3000}])
        await eventually(lambda: len(a.inbox) == len(b.inbox) == expected)

    for step, keys in enumerate([[KEY, new], [new, KEY], [new]], start=1):
        a.endpoint.reload_keyring(Keyring(keys))
        await exchange(4 * step - 2)
        b.endpoint.reload_keyring(Keyring(keys))
        await exchange(4 * step)
    assert a.stat("dropped_auth") == b.stat("dropped_auth") == 0


async def test_keyless_endpoint_cannot_start_sealing_by_reload(make_node):
    node = await make_node(None)
    with pytest.raises(ValueError):
        node.endpoint.reload_keyring(Keyring([KEY]))


async def test_plaintext_and_sealed_nodes_reject_each_other(make_node):
    keyed, keyless = await make_node([KEY]), await make_node(None)
    keyed.endpoint.send(keyless.address, [{"t": "sealed"}])
    keyless.endpoint.send(keyed.address, [{"t": "plain"}])
    await eventually(lambda: keyed.stat("dropped_auth") == 1 and keyless.stat("dropped_auth") == 1)
    assert keyed.inbox == [] and keyless.inbox == []


async def test_keyless_loopback_endpoints_talk_in_plaintext(make_node):
    a, b = await make_node(None), await make_node(None)
    a.endpoint.send(b.address, [{"t": "ping"}, {"t": "big", "v": b"y" * 3000}])
    await eventually(lambda: len(b.inbox) == 2)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "10.1.2.3"])
def test_keyless_bind_beyond_loopback_is_refused(host):
    with pytest.raises(InsecureBindError, match="--insecure"):
        GossipEndpoint((host, 0), None, TransportConfig(), lambda s, m: None)


@pytest.mark.parametrize("host", ["localhost", "example.org"])
def test_bind_host_must_be_an_ip_literal(host):
    with pytest.raises(ValueError, match="IP literal"):
        GossipEndpoint((host, 0), Keyring([KEY]), TransportConfig(), lambda s, m: None)


def test_insecure_or_keyed_endpoints_may_bind_beyond_loopback():
    GossipEndpoint(("0.0.0.0", 0), None, TransportConfig(), lambda s, m: None, insecure=True)
    GossipEndpoint(("0.0.0.0", 0), Keyring([KEY]), TransportConfig(), lambda s, m: None)


async def test_wildcard_bound_sender_is_identified_by_its_source_address(make_node):
    a = await make_node([KEY], bind=("0.0.0.0", 0))
    b = await make_node([KEY])
    a.endpoint.send(b.address, [{"t": "small"}, {"t": "big", "v": b"z" * 4000}])
    await eventually(lambda: len(b.inbox) == 2)
    assert {sender for sender, _ in b.inbox} == {("127.0.0.1", a.address[1])}


async def test_handler_exceptions_are_counted_and_later_messages_still_arrive(make_node):
    def explode(sender, message):
        if message["t"] == "boom":
            raise RuntimeError("handler bug")

    a, b = await make_node([KEY]), await make_node([KEY], on_message=explode)
    a.endpoint.send(b.address, [{"t": "boom"}, {"t": "ok", "n": 1}])
    a.endpoint.send(b.address, [{"t": "boom", "v": b"b" * 3000}, {"t": "ok", "n": 2}])
    await eventually(lambda: [m.get("n") for m in b.messages() if m["t"] == "ok"] == [1, 2])
    await eventually(lambda: b.stat("handler_errors") == 2)


async def test_udp_send_errors_are_counted_and_sending_goes_on(make_node):
    a, b = await make_node([KEY]), await make_node([KEY])
    a.endpoint.send(("255.255.255.255", 9), [{"t": "ping"}])
    a.endpoint.send(("192.0.2.1", 9), [{"t": "ping"}])
    a.endpoint.send(("::1", 9), [{"t": "ping"}])
    a.endpoint.send(("not-an-ip", 9), [{"t": "ping"}])
    await eventually(lambda: a.stat("send_errors") >= 3)
    a.endpoint.send(b.address, [{"t": "after"}])
    await eventually(lambda: b.messages() == [{"t": "after"}])


async def test_stream_to_a_closed_port_is_a_counted_send_error(make_node):
    a = await make_node([KEY])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
    a.endpoint.send(closed, [{"t": "big", "v": b"q" * 5000}])
    await eventually(lambda: a.stat("send_errors") == 1)
    assert a.stat("stream_messages_out") == 0


async def test_messages_too_big_for_any_stream_are_dropped_as_oversize(make_node):
    config = TransportConfig(max_stream_message=4096)
    a, b = await make_node([KEY], config=config), await make_node([KEY])
    a.endpoint.send(b.address, [{"t": "huge", "v": b"h" * 5000}, {"t": "fits"}])
    await eventually(lambda: b.messages() == [{"t": "fits"}])
    assert a.stat("dropped_oversize") == 1


async def test_receiver_refuses_frames_over_its_cap_and_sender_counts_it(make_node):
    a = await make_node([KEY])
    b = await make_node([KEY], config=TransportConfig(max_stream_message=4096))
    a.endpoint.send(b.address, [{"t": "big", "v": b"h" * 5000}])
    await eventually(lambda: b.stat("dropped_oversize") == 1 and a.stat("send_errors") == 1)
    assert b.inbox == []


async def test_unencodable_messages_raise_at_the_sender(make_node):
    a = await make_node([KEY])
    with pytest.raises(ValueError):
        a.endpoint.send(("127.0.0.1", 9), [{"t": "x", "v": object()}])
    with pytest.raises(ValueError):
        a.endpoint.send(("127.0.0.1", 9), [{"no": "type"}])


async def test_close_flushes_queued_datagrams_and_streams(make_node):
    # A grace a loaded machine cannot run out: close() returns as soon as all is sent.
    patient = dataclasses.replace(TransportConfig.local(), close_grace=DEADLINE)
    a, b = await make_node([KEY], config=patient), await make_node([KEY])
    a.endpoint.send(b.address, [{"t": "leave", "n": n} for n in range(100)])
    a.endpoint.send(b.address, [{"t": "state", "v": b"s" * 8000}])
    await a.endpoint.close()
    await eventually(lambda: len(b.inbox) == 101)
    with pytest.raises(RuntimeError):
        a.endpoint.send(b.address, [{"t": "late"}])


async def test_stats_report_every_documented_counter(make_node):
    a = await make_node([KEY])
    assert set(a.endpoint.stats()) == set(STAT_KEYS)
    assert set(a.endpoint.stats().values()) == {0}


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback")
async def test_ipv6_loopback_endpoints_exchange_small_and_large_messages(make_node):
    a, b = await make_node([KEY], bind=("::1", 0)), await make_node([KEY], bind=("::1", 0))
    a.endpoint.send(b.address, [{"t": "ping"}, {"t": "big", "v": b"6" * 5000}])
    await eventually(lambda: len(b.inbox) == 2)
    assert {sender for sender, _ in b.inbox} == {a.address}
