"""Transport settings that cannot work are refused when the config is built, not at first use."""

from __future__ import annotations

import pytest

from swarmnode.transport import TransportConfig


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_datagram": 100},
        {"max_datagram": 70_000},
        {"max_stream_message": 1000},
        {"stream_connect_timeout": 0},
        {"stream_frame_timeout": -1},
        {"close_grace": -0.1},
        {"send_queue_datagrams": 0},
        {"max_inbound_streams": 0},
        {"max_inbound_streams_per_address": 0},
        {"max_unauthenticated_streams": 0},
        {"max_unauthenticated_streams_per_address": 0},
        {"max_inbound_buffer_bytes": 1 << 20},
        {"max_inbound_buffer_bytes_per_address": 32 << 20},
        {"max_stream_message": 64 << 20},
        {"replay_window": 0.5},
        {"replay_cache_entries": 100},
    ],
)
def test_unworkable_settings_are_refused(overrides):
    with pytest.raises(ValueError):
        TransportConfig(**overrides)


def test_lan_is_the_default_and_local_only_shortens_timers():
    lan, local = TransportConfig.lan(), TransportConfig.local()
    assert lan == TransportConfig()
    assert local.max_datagram == lan.max_datagram
    assert local.max_stream_message == lan.max_stream_message
    assert local.stream_connect_timeout < lan.stream_connect_timeout
    assert local.stream_idle_timeout < lan.stream_idle_timeout


def test_both_profiles_defend_alike_against_hostile_peers():
    lan, local = TransportConfig.lan(), TransportConfig.local()
    for name in (
        "replay_window",
        "replay_cache_entries",
        "max_inbound_streams",
        "max_inbound_streams_per_address",
        "max_unauthenticated_streams",
        "max_unauthenticated_streams_per_address",
        "max_inbound_buffer_bytes",
        "max_inbound_buffer_bytes_per_address",
    ):
        assert getattr(local, name) == getattr(lan, name), name
    assert local.stream_hello_timeout <= lan.stream_hello_timeout
