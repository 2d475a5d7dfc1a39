"""Transport configuration: every knob of the gossip endpoint, with its unit and its reason.

`TransportConfig.lan()` (the defaults) suits nodes on one network; `local()`
shortens the stream timers for clusters on one host, such as tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.transport.packing import MAX_UDP_PAYLOAD

MIN_DATAGRAM = 128
"""Below this, after the envelope, no useful gossip message fits."""


@dataclass
class TransportConfig:
    """Transport knobs; `lan()` is the default profile, `local()` suits tests on one host."""

    max_datagram: int = 1400
    """Bytes per UDP datagram including the envelope. 1400 fits a 1500-byte Ethernet MTU
    with room for IPv6, VPN and tunnel headers; raise it only on jumbo-frame networks,
    lower it on links with a smaller path MTU (fragmented datagrams are lost wholesale)."""

    max_stream_message: int = 32 << 20
    """Bytes per stream frame (one sealed message), both the largest message this node
    sends and the largest it accepts. Must cover the largest value plus its metadata and
    the largest anti-entropy transfer message; lower it to cap memory per connection."""

    stream_connect_timeout: float = 2.0
    """Seconds to establish a stream connection before counting a send error. Raise it on
    high-latency WAN links."""

    stream_frame_timeout: float = 30.0
    """Seconds for one frame to cross a stream: the sender's wait for the acknowledgement
    and the receiver's wait for a frame body once its header arrived. Must cover
    `max_stream_message` at the slowest link speed (32 MiB at 10 Mbit/s is 27 s)."""

    stream_hello_timeout: float = 5.0
    """Seconds an inbound connection has to authenticate with its hello frame before it is
    cut off; keeps idle or hostile connections from holding slots."""

    stream_idle_timeout: float = 30.0
    """Seconds an outbound stream connection stays open with nothing to send. Inbound
    connections are closed after twice this, so the sender normally closes first. Lower
    it to free file descriptors on nodes with many peers."""

    send_queue_datagrams: int = 4096
    """Datagrams waiting for the socket before new ones are dropped (dropped_backlog).
    Gossip is loss-tolerant; an unbounded queue would only turn overload into memory."""

    stream_queue_messages: int = 64
    """Stream messages waiting per peer before new ones are dropped (dropped_backlog);
    at 1 MiB values this bounds memory per slow peer to about 64 MiB."""

    max_inbound_streams: int = 64
    """Concurrent inbound stream connections; extra ones are closed at once
    (streams_refused). Raise it for clusters where many peers stream at once."""

    close_grace: float = 1.0
    """Seconds `close()` waits for queued datagrams and stream messages (a graceful leave
    announcement, say) to go out before cutting everything."""

    def __post_init__(self) -> None:
        if not MIN_DATAGRAM <= self.max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(f"max_datagram must be in [{MIN_DATAGRAM}, {MAX_UDP_PAYLOAD}]")
        if self.max_stream_message < self.max_datagram:
            raise ValueError("max_stream_message must be at least max_datagram")
        timers = (
            self.stream_connect_timeout,
            self.stream_frame_timeout,
            self.stream_hello_timeout,
            self.stream_idle_timeout,
        )
        if min(timers) <= 0 or self.close_grace < 0:
            raise ValueError("stream timeouts must be positive and close_grace non-negative")
        queues = (self.send_queue_datagrams, self.stream_queue_messages, self.max_inbound_streams)
        if min(queues) < 1:
            raise ValueError("queue sizes and max_inbound_streams must be at least 1")

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
