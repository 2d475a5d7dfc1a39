"""Transport configuration: every knob of the gossip endpoint, with its unit and its reason.

`TransportConfig.lan()` (the defaults) suits nodes on one network; `local()`
shortens the stream timers for clusters on one host, such as tests. The caps
on inbound streams and the replay window are the same in both: they defend
against hostile peers, which a loopback cluster can meet as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, require, setting
from swarmnode.transport.framing import FRAME_HEADER_BYTES
from swarmnode.transport.packing import MAX_UDP_PAYLOAD

MIN_DATAGRAM = 128
"""Below this, after the envelope, no useful gossip message fits."""

MIN_REPLAY_WINDOW = 1.0
"""Seconds; clocks may legitimately differ by `store.max_clock_offset_ms` (500 ms by
default) and a datagram needs some time on the wire, so a smaller window would refuse
healthy traffic."""

MIN_REPLAY_CACHE = 1024
"""Below this, a busy node's window would shrink to a fraction of a second."""


@dataclass
class TransportConfig:
    """Transport knobs; `lan()` is the default profile, `local()` suits tests on one host."""

    max_datagram: int = setting(1400, "bytes", low=MIN_DATAGRAM, high=MAX_UDP_PAYLOAD)
    """Bytes per UDP datagram including the envelope. 1400 fits a 1500-byte Ethernet MTU
    with room for IPv6, VPN and tunnel headers; raise it only on jumbo-frame networks,
    lower it on links with a smaller path MTU (fragmented datagrams are lost wholesale)."""

    max_stream_message: int = setting(32 << 20, "bytes", low=MIN_DATAGRAM)
    """Bytes per stream frame (one sealed message), both the largest message this node
    sends and the largest it accepts. Must cover the largest value plus its metadata and
    the largest anti-entropy transfer message; lower it to cap memory per connection."""

    stream_connect_timeout: float = setting(2.0, "s", low=0, above=True)
    """Seconds to establish a stream's TCP connection before counting a send error. Raise
    it on high-latency WAN links."""

    stream_frame_timeout: float = setting(30.0, "s", low=0, above=True)
    """Seconds for one frame to cross a stream: the sender's wait for the peer's challenge
    and for each acknowledgement, and the receiver's wait for the rest of a frame once its
    first byte arrived (stream_frames_timed_out). Must cover `max_stream_message` at the
    slowest link speed (32 MiB at 10 Mbit/s is 27 s)."""

    stream_hello_timeout: float = setting(3.0, "s", low=0, above=True)
    """Seconds an inbound connection has, from being accepted, to authenticate with its
    hello (one round trip: challenge out, hello back) before it is cut off
    (streams_hello_timeout). Keeps connections without the key from lingering; raise it
    only on links with round trips near a second."""

    stream_idle_timeout: float = setting(30.0, "s", low=0, above=True)
    """Seconds an outbound stream connection stays open with nothing to send. Inbound
    connections are closed after twice this, so the sender normally closes first. Lower
    it to free file descriptors on nodes with many peers."""

    send_queue_datagrams: int = setting(4096, "datagrams", low=1)
    """Datagrams waiting for the socket before new ones are dropped (dropped_backlog).
    Gossip is loss-tolerant; an unbounded queue would only turn overload into memory."""

    stream_queue_messages: int = setting(64, "messages", low=1)
    """Stream messages waiting per peer before new ones are dropped (dropped_backlog);
    at 1 MiB values this bounds memory per slow peer to about 64 MiB."""

    max_inbound_streams: int = setting(64, "streams", low=1)
    """Concurrent authenticated inbound stream connections; a connection that authenticates
    while this many are open is closed (streams_refused_inbound_cap). Each peer uses one
    connection, so raise it for clusters of more nodes than this that stream at once."""

    max_inbound_streams_per_address: int = setting(8, "streams", low=1)
    """Authenticated inbound streams from one IP address (streams_refused_address_cap).
    Above 1 because several nodes may share a host or a NAT address; keeps one address
    from taking the whole pool."""

    max_unauthenticated_streams: int = setting(16, "streams", low=1)
    """Inbound connections that have not yet sent a valid hello. A new connection beyond
    it sheds the oldest such connection (streams_shed_unauthenticated), so idle or
    hostile connections cannot keep real peers out; they have their own pool, separate
    from `max_inbound_streams`. Each costs at most a hello's bytes (516)."""

    max_unauthenticated_streams_per_address: int = setting(4, "streams", low=1)
    """Unauthenticated connections from one IP address; a new one beyond it sheds that
    address's oldest, so one noisy address does not push out everyone else's handshakes."""

    max_inbound_buffer_bytes: int = setting(128 << 20, "bytes", low=MIN_DATAGRAM)
    """Bytes of inbound frame bodies buffered at once across all streams. A frame whose
    header would take the node past it is refused and its connection closed
    (streams_refused_buffer_cap); the sender counts a send error and anti-entropy
    repairs later. Bounds what authenticated peers can make the node hold: 128 MiB is
    four frames of `max_stream_message`."""

    max_inbound_buffer_bytes_per_address: int = setting(64 << 20, "bytes", low=MIN_DATAGRAM)
    """Bytes of inbound frame bodies buffered at once for one IP address
    (streams_refused_address_buffer_cap). At least `max_stream_message` plus its 4-byte
    header, so the largest frame is always accepted from an address holding nothing."""

    replay_window: float = setting(10.0, "s", low=MIN_REPLAY_WINDOW)
    """Seconds. A sealed datagram is accepted only if its sender's clock stamp lies within
    this much of the receiver's clock (else datagrams_too_old / datagrams_too_new, logged
    with the offset), and only once (else datagrams_replayed). Must exceed the clock
    offset between nodes (`store.max_clock_offset_ms`, 0.5 s) plus the longest a datagram
    spends queued and on the wire. Larger tolerates worse clocks at the cost of
    remembering more nonces; nodes whose clocks differ by more are cut off, loudly."""

    replay_cache_entries: int = setting(65536, "nonces", low=MIN_REPLAY_CACHE)
    """Nonces of accepted datagrams remembered to refuse their replays, about 150 bytes
    each (10 MB). When full, the oldest is forgotten and everything stamped before it is
    refused (replay_cache_evictions), so the effective window shrinks to this many
    datagrams: 65536 covers the whole 10 s window up to 6500 datagrams/s."""

    close_grace: float = setting(1.0, "s", low=0)
    """Seconds `close()` waits for queued datagrams and stream messages (a graceful leave
    announcement, say) to go out before cutting everything."""

    def __post_init__(self) -> None:
        check_settings(self, "transport")
        require(
            self.max_stream_message >= self.max_datagram,
            "transport",
            "max_stream_message",
            self.max_stream_message,
            f"must be at least [transport] max_datagram ({self.max_datagram})",
        )
        frame = self.max_stream_message + FRAME_HEADER_BYTES
        for name in ("max_inbound_buffer_bytes", "max_inbound_buffer_bytes_per_address"):
            require(
                getattr(self, name) >= frame,
                "transport",
                name,
                getattr(self, name),
                f"must be at least [transport] max_stream_message + {FRAME_HEADER_BYTES} "
                f"({frame}), or the largest frame could never be accepted",
            )

    @classmethod
    def lan(cls) -> TransportConfig:
        return cls()

    @classmethod
    def local(cls) -> TransportConfig:
        """Short timers for clusters on one host, where every hop takes microseconds."""
        return cls(
            stream_connect_timeout=0.5,
            stream_frame_timeout=10.0,
            stream_hello_timeout=2.0,
            stream_idle_timeout=5.0,
            close_grace=0.5,
        )
