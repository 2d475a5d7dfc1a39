"""Sealed datagrams captured off the wire and sent again change nothing, and are counted.

An eavesdropper without the key keeps copies of what a real endpoint sent and
delivers them again, at once or later; a node whose clock is wrong sends fresh
datagrams that look old or early. Endpoints here play either part with an
offset wall clock, so no test waits for a window to pass.
"""

from __future__ import annotations

import logging
import os
import re

from swarmnode.transport import Keyring, TransportConfig
from swarmnode.transport.envelope import KIND_SEALED_V1

from .conftest import eventually
from .wire import capture_datagrams, send_datagrams

KEY = os.urandom(32)
WINDOW = TransportConfig.local().replay_window


async def captured_from(sender, messages) -> list[bytes]:
    """What `sender` put on the wire for `messages`, as an eavesdropper recorded it."""
    async with capture_datagrams() as (tap, captured):
        sender.endpoint.send(tap, messages)
        await eventually(lambda: captured and len(captured) == sender.stat("datagrams_out"))
        return list(captured)


async def deliver(node, packets: list[bytes]) -> None:
    """Send packets to a node and wait until it has read them all."""
    for packet in packets:
        expected = node.stat("datagrams_in") + 1
        send_datagrams(node.address, [packet])
        await eventually(lambda expected=expected: node.stat("datagrams_in") == expected)


def deltas(count: int) -> list[dict]:
    return [{"t": "delta", "n": n, "pad": b"p" * 300} for n in range(count)]


async def test_datagrams_replayed_after_delivery_change_nothing_and_are_counted(make_node):
    sender, receiver = await make_node([KEY]), await make_node([KEY])
    packets = await captured_from(sender, deltas(20))
    assert len(packets) > 1
    await deliver(receiver, packets)
    await eventually(lambda: len(receiver.inbox) == 20)
    delivered = list(receiver.inbox)

    for _ in range(3):
        await deliver(receiver, packets)
    assert receiver.stat("datagrams_replayed") == 3 * len(packets)
    assert receiver.inbox == delivered
    assert receiver.stat("replay_cache_entries") == len(packets)


async def test_a_datagram_delivered_after_the_window_is_dropped(make_node):
    sender = await make_node([KEY])
    in_time = await make_node([KEY])
    too_late = await make_node([KEY], clock_offset=WINDOW + 1)
    packets = await captured_from(sender, deltas(5))
    await deliver(too_late, packets)
    assert too_late.stat("datagrams_too_old") == len(packets)
    assert too_late.inbox == []
    assert too_late.stat("replay_cache_entries") == 0
    await deliver(in_time, packets)
    await eventually(lambda: len(in_time.inbox) == 5)


async def test_traffic_between_clocks_apart_by_less_than_the_window_passes(make_node):
    offsets = [-0.45 * WINDOW, -0.5, 0.0, 0.5, 0.45 * WINDOW]
    nodes = [await make_node([KEY], clock_offset=offset) for offset in offsets]
    for source in nodes:
        for target in nodes:
            if target is not source:
                source.endpoint.send(
                    target.address, [{"t": "ping"}, {"t": "big", "v": b"b" * 4000}]
                )
    await eventually(lambda: all(len(node.inbox) == 2 * (len(nodes) - 1) for node in nodes))
    for node in nodes:
        assert node.stat("datagrams_too_old") == node.stat("datagrams_too_new") == 0


async def test_a_node_whose_clock_is_far_off_is_refused_loudly_in_both_directions(
    make_node, caplog
):
    caplog.set_level(logging.WARNING, logger="swarmnode.transport")
    honest = await make_node([KEY])
    ahead = await make_node([KEY], clock_offset=3600.0)
    ahead.endpoint.send(honest.address, [{"t": "ping"}])
    honest.endpoint.send(ahead.address, [{"t": "ping"}])
    await eventually(lambda: honest.stat("datagrams_too_new") == 1)
    await eventually(lambda: ahead.stat("datagrams_too_old") == 1)
    assert honest.inbox == [] and ahead.inbox == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    too_new = [w for w in warnings if w.startswith("datagrams_too_new")]
    too_old = [w for w in warnings if w.startswith("datagrams_too_old")]
    assert too_new and too_old
    assert 3_500_000 < offset_ms(too_new[0]) < 3_700_000 and "clock is ahead" in too_new[0]
    assert -3_700_000 < offset_ms(too_old[0]) < -3_500_000 and "NTP" in too_old[0]


def offset_ms(line: str) -> int:
    return int(re.search(r"offset_ms=(-?\d+)", line).group(1))


async def test_replays_stay_refused_across_a_key_rotation(make_node):
    new = os.urandom(32)
    sender, receiver = await make_node([KEY]), await make_node([KEY])
    packets = await captured_from(sender, deltas(3))
    await deliver(receiver, packets)
    receiver.endpoint.reload_keyring(Keyring([new, KEY]))
    await deliver(receiver, packets)
    assert receiver.stat("datagrams_replayed") == len(packets)
    receiver.endpoint.reload_keyring(Keyring([new]))
    await deliver(receiver, packets)
    assert receiver.stat("dropped_auth") == len(packets)
    assert len(receiver.inbox) == 3


async def test_a_datagram_of_the_old_sealed_format_is_refused_as_another_version(make_node):
    node = await make_node([KEY])
    old_format = bytes((KIND_SEALED_V1,)) + Keyring([KEY]).primary.key_id + os.urandom(60)
    await deliver(node, [old_format])
    assert node.stat("dropped_version") == 1
    assert node.inbox == []
