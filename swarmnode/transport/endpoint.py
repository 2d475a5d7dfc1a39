"""The real network side of gossip: one UDP socket and one TCP listener per node.

Small messages travel as datagrams (asyncio-dgram), packed several to a packet
and each packet sealed in an envelope. A message that cannot fit a datagram
(a 1 MiB value, an anti-entropy state transfer) goes over a TCP stream to the
same port instead, framed and acknowledged (see framing.py), so it is either
delivered intact or counted as a send error; it is never dropped silently.

The endpoint is the trust boundary. Whatever arrives, the receive paths never
raise: a packet that fails authentication or decoding is counted and dropped,
and an exception from the node's `on_message` callback is logged and counted.
A sealed datagram is delivered at most once and only while fresh (replay.py);
a stream is trusted only after a hello that answers this connection's own
challenge, and until then it can make the node hold no more than that hello
(inbound.py) nor take a slot a real peer needs (admission.py).

Sending never blocks the caller: datagrams wait in a bounded queue drained by
one task that honours the socket's backpressure and seals each datagram as it
leaves (so its clock stamp is fresh), and each peer with stream traffic gets
one task and one kept-alive connection.

With no cluster key the endpoint refuses to bind anything but loopback unless
told `insecure=True`, so a forgotten key file cannot expose plaintext gossip to
a network.

Logs go to the `swarmnode.transport` logger as key=value pairs. Drops and send
errors are logged at WARNING on the 1st, 2nd, 4th, 8th... occurrence and at
DEBUG otherwise, so a flood of bad packets cannot flood the log. Datagrams
outside the replay window are the exception: they mean a clock is wrong, which
an operator must fix, so they are logged at WARNING once a minute for as long
as they go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncio_dgram

from swarmnode.errors import DecodeError
from swarmnode.metrics import Registry
from swarmnode.sansio import Address, Message
from swarmnode.transport.admission import InboundAdmission, Refusal, StreamCaps
from swarmnode.transport.config import TransportConfig
from swarmnode.transport.envelope import (
    AuthenticationError,
    VersionError,
    envelope_overhead,
    open_envelope,
    seal_envelope,
)
from swarmnode.transport.framing import (
    ACK,
    CHALLENGE_BYTES,
    CHALLENGE_PREAMBLE_BYTES,
    FRAME_HEADER_BYTES,
    HELLO_CONTEXT,
    HELLO_MAX_FRAME,
    FrameTooLarge,
    decode_challenge,
    decode_hello,
    encode_challenge,
    encode_hello,
    frame,
    frame_context,
    frame_length,
    is_wildcard,
    parse_address,
)
from swarmnode.transport.inbound import InboundStream
from swarmnode.transport.keyring import Keyring
from swarmnode.transport.packing import pack_messages, unpack_datagram
from swarmnode.transport.replay import Freshness, ReplayWindow

log = logging.getLogger("swarmnode.transport")

_PORT_ATTEMPTS = 8
"""Tries to find a port free for both UDP and TCP when binding port 0."""

_CLOSE_TURNS = 100
"""Loop turns `close()` waits for the UDP socket to be released."""

_CLOCK_WARNING_INTERVAL = 60.0
"""Seconds between WARNING lines while datagrams keep arriving outside the replay window."""

COUNTER_KEYS = (
    "datagrams_in",
    "datagrams_out",
    "bytes_in",
    "bytes_out",
    "stream_messages_in",
    "stream_messages_out",
    "stream_bytes_in",
    "stream_bytes_out",
    "dropped_auth",
    "dropped_decode",
    "dropped_oversize",
    "dropped_backlog",
    "dropped_version",
    "datagrams_replayed",
    "datagrams_too_old",
    "datagrams_too_new",
    "replay_cache_evictions",
    "hellos_failed",
    "hellos_replayed",
    "streams_hello_timeout",
    "streams_shed_unauthenticated",
    "streams_refused_inbound_cap",
    "streams_refused_address_cap",
    "streams_refused_buffer_cap",
    "streams_refused_address_buffer_cap",
    "stream_frames_timed_out",
    "send_errors",
    "handler_errors",
)
"""Counters (only ever rise) reported by `GossipEndpoint.stats()`.

bytes_* count UDP bytes including envelopes. stream_bytes_* count TCP frame bytes
including headers and hellos (out: acknowledged frames; in: frames read).
dropped_auth: datagrams or frames sealed with an unknown key, failing
authentication, or of the wrong kind (sealed vs plaintext). dropped_decode:
malformed envelopes, payloads or frames, and streams cut short. dropped_oversize:
inbound frames over the stream cap and outbound messages too large even for a
stream. dropped_backlog: outbound messages refused because a send queue was
full. dropped_version: datagrams, frames or hellos of another protocol version
(a node of another release).

Replay window (sealed datagrams only; see replay.py): datagrams_replayed, a
nonce already accepted; datagrams_too_old / datagrams_too_new, stamped outside
±replay_window of this node's clock, or at or below the window's floor;
replay_cache_evictions, nonces forgotten early because the cache was full
(each raises the floor).

Streams: hellos_failed, connections that closed, or sent something other than
a hello, before authenticating (a hello sealed with a wrong key counts as
dropped_auth, one of another version as dropped_version); hellos_replayed,
authentic hellos answering another connection's challenge (captured and
replayed); streams_hello_timeout, connections cut for not authenticating
within stream_hello_timeout; streams_shed_unauthenticated, unauthenticated
connections closed to admit a newer one; streams_refused_inbound_cap / _address_cap, authenticated
connections over max_inbound_streams / max_inbound_streams_per_address;
streams_refused_buffer_cap / _address_buffer_cap, frames whose body would
exceed max_inbound_buffer_bytes / _per_address (the connection is closed);
stream_frames_timed_out, frames not complete within stream_frame_timeout of
their first byte.

send_errors: datagrams the socket refused, stream messages not acknowledged by
their receiver, invalid destination addresses. handler_errors: exceptions
raised by `on_message`.
"""

GAUGE_KEYS = (
    "streams_unauthenticated",
    "streams_authenticated",
    "stream_buffered_bytes",
    "stream_buffered_bytes_peak",
    "replay_cache_entries",
)
"""Present values reported by `GossipEndpoint.stats()` (they go up and down).

streams_unauthenticated / streams_authenticated: open inbound connections per
pool. stream_buffered_bytes: bytes reserved right now for inbound hellos and
frame bodies (the process's whole inbound stream buffering);
stream_buffered_bytes_peak: its highest value since start. replay_cache_entries:
nonces remembered by the replay window.
"""

STAT_KEYS = COUNTER_KEYS + GAUGE_KEYS

_COUNTER_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    # (Prometheus name, help, label, label values, stats key with the label in braces)
    (
        "swarmnode_transport_datagrams_total",
        "Gossip datagrams received or sent.",
        "direction",
        ("in", "out"),
        "datagrams_{direction}",
    ),
    (
        "swarmnode_transport_udp_bytes_total",
        "Bytes of gossip datagrams received or sent, envelopes included.",
        "direction",
        ("in", "out"),
        "bytes_{direction}",
    ),
    (
        "swarmnode_transport_stream_messages_total",
        "Gossip messages received or sent over TCP streams.",
        "direction",
        ("in", "out"),
        "stream_messages_{direction}",
    ),
    (
        "swarmnode_transport_stream_bytes_total",
        "Bytes of stream frames read or acknowledged, headers and hellos included.",
        "direction",
        ("in", "out"),
        "stream_bytes_{direction}",
    ),
    (
        "swarmnode_transport_dropped_total",
        "Datagrams, frames or messages dropped: failed authentication, malformed, too "
        "large, send queue full, or of another protocol version.",
        "reason",
        ("auth", "decode", "oversize", "backlog", "version"),
        "dropped_{reason}",
    ),
    (
        "swarmnode_transport_datagrams_rejected_total",
        "Sealed datagrams refused by the replay window: replayed, or stamped too old or too new.",
        "reason",
        ("replayed", "too_old", "too_new"),
        "datagrams_{reason}",
    ),
    (
        "swarmnode_transport_hellos_rejected_total",
        "Inbound streams that failed to authenticate, or replayed another's hello.",
        "reason",
        ("failed", "replayed"),
        "hellos_{reason}",
    ),
    (
        "swarmnode_transport_streams_closed_total",
        "Inbound streams closed by the node: no hello in time, shed to admit a newer "
        "one, or refused by a connection or buffer cap.",
        "reason",
        (
            "hello_timeout",
            "shed_unauthenticated",
            "refused_inbound_cap",
            "refused_address_cap",
            "refused_buffer_cap",
            "refused_address_buffer_cap",
        ),
        "streams_{reason}",
    ),
    (
        "swarmnode_transport_stream_frames_timed_out_total",
        "Inbound stream frames not complete within stream_frame_timeout.",
        "",
        (),
        "stream_frames_timed_out",
    ),
    (
        "swarmnode_transport_send_errors_total",
        "Datagrams the socket refused, stream messages not acknowledged, bad destinations.",
        "",
        (),
        "send_errors",
    ),
    (
        "swarmnode_transport_handler_errors_total",
        "Exceptions raised by the node's message handler.",
        "",
        (),
        "handler_errors",
    ),
)
"""Every counter of COUNTER_KEYS but replay_cache_evictions (the replay window keeps it)."""

_REFUSAL_COUNTERS = {
    Refusal.INBOUND_CAP: "streams_refused_inbound_cap",
    Refusal.ADDRESS_CAP: "streams_refused_address_cap",
    Refusal.BUFFER_CAP: "streams_refused_buffer_cap",
    Refusal.ADDRESS_BUFFER_CAP: "streams_refused_address_buffer_cap",
}


class InsecureBindError(ValueError):
    """A keyless endpoint asked to bind a non-loopback address without `insecure`."""


def check_bind_allowed(host: str, keyring: Keyring | None, insecure: bool) -> None:
    """Raise InsecureBindError for plaintext gossip on a non-loopback address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bind host must be an IP literal, got {host!r}") from None
    if keyring is None and not insecure and not ip.is_loopback:
        raise InsecureBindError(
            f"refusing to bind {host} without a cluster key: gossip would travel in "
            "plaintext; give a cluster key file, bind a loopback address, or pass --insecure"
        )


@dataclass
class _Outbound:
    """A kept-alive outbound stream and where its frames stand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    challenge: bytes
    seq: int = 0


class GossipEndpoint:
    """UDP and TCP on one host:port, carrying sealed gossip messages to and from peers.

    `wall_clock` (seconds since the epoch) stamps sealed envelopes and judges the
    stamps of arriving ones; tests give an offset clock to play a node whose clock
    is wrong.
    """

    def __init__(
        self,
        bind: Address,
        keyring: Keyring | None,
        config: TransportConfig,
        on_message: Callable[[Address, Message], None],
        *,
        insecure: bool = False,
        wall_clock: Callable[[], float] = time.time,
        metrics: Registry | None = None,
    ) -> None:
        host, port = bind
        check_bind_allowed(host, keyring, insecure)
        if type(port) is not int or not 0 <= port < 65536:
            raise ValueError(f"bind port must be in [0, 65535], got {port!r}")
        self._bind = (host, port)
        self._keyring = keyring
        self._config = config
        self._on_message = on_message
        self._wall_clock = wall_clock
        self._budget = config.max_datagram - envelope_overhead(keyring)
        self._replay = ReplayWindow(round(config.replay_window * 1000), config.replay_cache_entries)
        self._clock_warned: dict[str, float] = {}
        self._admission: InboundAdmission[InboundStream] = InboundAdmission(
            StreamCaps(
                unauthenticated=config.max_unauthenticated_streams,
                unauthenticated_per_address=config.max_unauthenticated_streams_per_address,
                authenticated=config.max_inbound_streams,
                authenticated_per_address=config.max_inbound_streams_per_address,
                buffer_bytes=config.max_inbound_buffer_bytes,
                buffer_bytes_per_address=config.max_inbound_buffer_bytes_per_address,
            )
        )
        self._address: Address | None = None
        self._udp: asyncio_dgram.aio.DatagramServer | None = None
        self._server: asyncio.Server | None = None
        self._send_queue: asyncio.Queue[tuple[Address, bytes]] = asyncio.Queue(
            config.send_queue_datagrams
        )
        self._links: dict[Address, asyncio.Queue[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbound: set[InboundStream] = set()
        self._running = False
        self._metrics = metrics if metrics is not None else Registry()
        self._counter = self._declare_metrics(self._metrics)

    def _declare_metrics(self, m: Registry) -> dict[str, Any]:
        """The endpoint's metrics (all under `transport` in `stats`); returns the counter
        children by their `stats` key, all made now so every key shows from the start."""
        children: dict[str, Any] = {}
        for name, help, label, values, key in _COUNTER_FAMILIES:
            if not label:
                children[key] = m.counter(name, help, stats=("transport", key))
                continue
            family = m.counter(name, help, labels=(label,), stats=("transport", key))
            for value in values:
                children[key.format(**{label: value})] = family.labels(value)
        admission, replay = self._admission, self._replay
        m.counter(
            "swarmnode_transport_replay_cache_evictions_total",
            "Nonces the replay window forgot early because its cache was full.",
            fn=lambda: replay.evicted,
            stats=("transport", "replay_cache_evictions"),
        )
        m.gauge(
            "swarmnode_transport_streams_open",
            "Open inbound streams, by pool (authenticated or not yet).",
            labels=("pool",),
            fn=lambda: {
                "unauthenticated": admission.unauthenticated,
                "authenticated": admission.authenticated,
            },
            stats=("transport", "streams_{pool}"),
        )
        m.gauge(
            "swarmnode_transport_stream_buffered_bytes",
            "Bytes reserved now for inbound hellos and frame bodies.",
            fn=lambda: admission.buffered_bytes,
            stats=("transport", "stream_buffered_bytes"),
        )
        m.gauge(
            "swarmnode_transport_stream_buffered_peak_bytes",
            "Highest stream_buffered_bytes since start.",
            fn=lambda: admission.buffered_bytes_peak,
            stats=("transport", "stream_buffered_bytes_peak"),
        )
        m.gauge(
            "swarmnode_transport_replay_cache_entries",
            "Nonces the replay window remembers.",
            fn=lambda: len(replay),
            stats=("transport", "replay_cache_entries"),
        )
        return children

    @property
    def address(self) -> Address:
        """The bound address (with the port the OS chose when asked for port 0)."""
        if self._address is None:
            raise RuntimeError("endpoint not started")
        return self._address

    def stats(self) -> dict[str, int]:
        """Every key of STAT_KEYS: the `transport` section of the node's `stats`."""
        return self._metrics.snapshot("transport")

    def reload_keyring(self, keyring: Keyring) -> None:
        """Switch to a re-read key file without a restart: each rotation step is one reload.

        Only a keyed endpoint can reload; turning encryption on or off changes who
        may talk to the node and needs a restart.
        """
        if self._keyring is None:
            raise ValueError("a keyless endpoint cannot start sealing without a restart")
        self._keyring = keyring
        log.info("cluster keyring reloaded keys=%s", keyring)

    async def start(self) -> None:
        host, port = self._bind
        loop = asyncio.get_running_loop()
        for attempt in range(_PORT_ATTEMPTS):
            udp = await asyncio_dgram.bind((host, port))
            chosen = udp.sockname[1]
            try:
                server = await loop.create_server(lambda: InboundStream(self._accept), host, chosen)
            except OSError as exc:
                udp.close()
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            break
        self._udp, self._server = udp, server
        self._address = (host, chosen)
        self._running = True
        self._spawn(self._receive_loop())
        self._spawn(self._send_loop())
        log.info(
            "gossip endpoint started address=%s sealed=%s max_datagram=%d",
            _fmt(self._address),
            self._keyring is not None,
            self._config.max_datagram,
        )

    async def close(self) -> None:
        """Flush queued sends for up to `close_grace` seconds, then stop everything."""
        if not self._running:
            return
        self._running = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._config.close_grace):
                await self._send_queue.join()
                for queue in list(self._links.values()):
                    await queue.join()
        assert self._server is not None and self._udp is not None
        self._server.close()
        self._udp.close()
        for conn in list(self._inbound):
            conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        await self._udp_socket_closed()
        log.info("gossip endpoint closed address=%s stats=%s", _fmt(self.address), self.stats())

    async def _udp_socket_closed(self) -> None:
        """Wait (a few loop turns at most) until the UDP port is free to bind again.

        The stdlib loop closes a datagram socket one loop turn after
        `transport.close()`; a node restarting on the same port needs it gone.
        """
        assert self._udp is not None
        for _ in range(_CLOSE_TURNS):
            if self._udp.socket.fileno() == -1:
                return
            await asyncio.sleep(0)

    def send(self, to: Address, messages: list[Message]) -> None:
        """Queue messages for a peer without blocking.

        Raises ValueError for a message no receiver would accept (a bug in the
        caller); an unusable destination or a full queue is counted, not raised,
        since destinations often come from other nodes' gossip.
        """
        if not self._running:
            raise RuntimeError("endpoint is not running")
        packing = pack_messages(messages, self._budget)
        try:
            to = parse_address(to)
        except DecodeError as exc:
            self._count_send_error(to, exc)
            return
        for payload in packing.datagrams:
            if self._send_at_once(to, payload):
                continue
            try:
                self._send_queue.put_nowait((to, payload))
            except asyncio.QueueFull:
                self._count("dropped_backlog", to, "datagram send queue full")
        for payload in packing.streamed:
            self._send_stream(to, payload)

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- datagrams -------------------------------------------------------------

    async def _receive_loop(self) -> None:
        assert self._udp is not None
        while True:
            try:
                data, source = await self._udp.recv()
            except asyncio_dgram.TransportClosed:
                if self._running:
                    log.error("udp socket closed unexpectedly address=%s", _fmt(self.address))
                return
            except Exception as exc:
                # A socket error from an earlier send, surfaced by asyncio-dgram here.
                self._count_send_error("-", exc)
                continue
            try:
                self._on_datagram(data, (source[0], source[1]))
            except Exception:
                log.exception("datagram handling failed source=%s", _fmt(source))
                self._counter["dropped_decode"].inc()

    def _on_datagram(self, data: bytes, sender: Address) -> None:
        self._counter["datagrams_in"].inc()
        self._counter["bytes_in"].inc(len(data))
        try:
            opened = open_envelope(data, self._keyring)
        except DecodeError as exc:
            self._count(_decode_counter(exc), sender, exc)
            return
        if opened.nonce is not None and opened.sent_ms is not None:
            now_ms = self._now_ms()
            verdict = self._replay.check(opened.nonce, opened.sent_ms, now_ms)
            if verdict is Freshness.REPLAYED:
                self._count("datagrams_replayed", sender, "nonce already accepted")
                return
            if verdict is not Freshness.FRESH:
                self._count_outside_window(verdict, sender, opened.sent_ms - now_ms)
                return
        try:
            messages = unpack_datagram(opened.payload)
        except DecodeError as exc:
            self._count("dropped_decode", sender, exc)
            return
        self._deliver(sender, messages)

    def _count_outside_window(self, verdict: Freshness, sender: Address, offset_ms: int) -> None:
        counter = "datagrams_too_new" if verdict is Freshness.TOO_NEW else "datagrams_too_old"
        child = self._counter[counter]
        child.inc()
        count = child.value
        now = time.monotonic()
        last = self._clock_warned.get(counter)
        quiet = last is not None and now - last < _CLOCK_WARNING_INTERVAL
        if not quiet:
            self._clock_warned[counter] = now
        if verdict is Freshness.TOO_NEW:
            why = "the sender's clock is ahead of this node's"
        else:
            why = "a replay, a datagram delayed that long, or the sender's clock is behind"
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "%s peer=%s count=%d offset_ms=%d window_ms=%d error=datagram stamped outside "
            "the replay window: %s; check NTP on both hosts",
            counter,
            _fmt(sender),
            count,
            offset_ms,
            self._replay.window_ms,
            why,
        )

    def _deliver(self, sender: Address, messages: list[Message]) -> None:
        for message in messages:
            try:
                self._on_message(sender, message)
            except Exception:
                self._counter["handler_errors"].inc()
                log.exception("on_message failed sender=%s t=%s", _fmt(sender), message["t"])

    async def _send_loop(self) -> None:
        assert self._udp is not None
        while True:
            to, payload = await self._send_queue.get()
            try:
                packet = seal_envelope(payload, self._keyring, sent_ms=self._now_ms())
            except ValueError as exc:  # a wall clock before 1970 cannot stamp anything
                self._count_send_error(to, exc)
                self._send_queue.task_done()
                continue
            try:
                await self._send_datagram(to, packet)
            finally:
                self._send_queue.task_done()

    def _send_at_once(self, to: Address, payload: bytes) -> bool:
        """Hand a datagram to the socket now when nothing waits before it and the socket
        takes more: a call or its answer then leaves in this turn of the loop, not after
        the send loop's next turn (a scatter's calls leave before its own search). False:
        queue it."""
        udp = self._udp
        assert udp is not None
        # asyncio-dgram has no synchronous send: its transport, its queue of socket
        # errors, and the event its flow control clears while the socket's buffer is full.
        if not self._send_queue.empty() or not udp._drained.is_set():
            return False
        try:
            packet = seal_envelope(payload, self._keyring, sent_ms=self._now_ms())
        except ValueError:
            return False  # the send loop counts it
        self._take_socket_errors()
        try:
            udp._transport.sendto(packet, to)
        except Exception as exc:
            self._count_send_error(to, exc)
            return True
        if not udp._excq.empty():  # the send failed: asyncio reported it, did not raise
            self._take_socket_errors()
            return True
        self._counter["datagrams_out"].inc()
        self._counter["bytes_out"].inc(len(packet))
        return True

    def _take_socket_errors(self) -> None:
        """Count the socket errors asyncio-dgram holds (it raises each on the next call)."""
        assert self._udp is not None
        while True:
            try:
                _ = self._udp.exception
                return
            except Exception as exc:
                self._count_send_error("-", exc)

    async def _send_datagram(self, to: Address, packet: bytes) -> None:
        assert self._udp is not None
        # asyncio-dgram reports a socket error on the next call after it happened;
        # take those first so they do not cost this packet.
        self._take_socket_errors()
        try:
            await self._udp.send(packet, to)
        except Exception as exc:
            self._count_send_error(to, exc)
            return
        self._counter["datagrams_out"].inc()
        self._counter["bytes_out"].inc(len(packet))

    # --- outbound streams ------------------------------------------------------

    def _send_stream(self, to: Address, payload: bytes) -> None:
        size = len(payload) + envelope_overhead(self._keyring)
        if size > self._config.max_stream_message:
            self._count(
                "dropped_oversize",
                to,
                f"message of {size} bytes exceeds max_stream_message "
                f"{self._config.max_stream_message}",
            )
            return
        queue = self._links.get(to)
        if queue is None:
            queue = asyncio.Queue(self._config.stream_queue_messages)
            self._links[to] = queue
            self._spawn(self._run_link(to, queue))
        try:
            queue.put_nowait(payload)
        except asyncio.QueueFull:
            self._count("dropped_backlog", to, "stream send queue full")

    async def _run_link(self, to: Address, queue: asyncio.Queue[bytes]) -> None:
        """Carry one peer's stream messages over a kept-alive connection."""
        connection: _Outbound | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(self._config.stream_idle_timeout):
                        payload = await queue.get()
                except TimeoutError:
                    if queue.empty():
                        del self._links[to]
                        return
                    continue
                try:
                    connection = await self._send_frame(to, payload, connection)
                finally:
                    queue.task_done()
        finally:
            if self._links.get(to) is queue:
                del self._links[to]
            if connection is not None:
                connection.writer.close()

    async def _send_frame(
        self, to: Address, payload: bytes, connection: _Outbound | None
    ) -> _Outbound | None:
        """Send one message frame and wait for its ACK; returns the connection to keep, if any."""
        reused = connection is not None
        while True:
            try:
                acks, sent = 1, 0
                if connection is None:
                    connection = await self._connect(to)
                    hello = frame(
                        seal_envelope(
                            encode_hello(self.address, connection.challenge),
                            self._keyring,
                            context=HELLO_CONTEXT,
                        )
                    )
                    connection.writer.write(hello)
                    acks, sent = 2, len(hello)
                context = frame_context(connection.challenge, connection.seq)
                framed = frame(seal_envelope(payload, self._keyring, context=context))
                sent += len(framed)
                async with asyncio.timeout(self._config.stream_frame_timeout):
                    connection.writer.write(framed)
                    await connection.writer.drain()
                    if await connection.reader.readexactly(acks) != ACK * acks:
                        raise ConnectionError("peer answered with something other than ACK")
                connection.seq += 1
            except Exception as exc:
                if connection is not None:
                    connection.writer.close()
                    connection = None
                if reused:
                    # The peer may have closed a kept connection while it sat idle.
                    reused = False
                    continue
                self._count_send_error(to, f"stream: {type(exc).__name__}: {exc}")
                return None
            self._counter["stream_messages_out"].inc()
            self._counter["stream_bytes_out"].inc(sent)
            return connection

    async def _connect(self, to: Address) -> _Outbound:
        """Open a stream to a peer and read its challenge."""
        host = self._bind[0]
        same_family = ipaddress.ip_address(host).version == ipaddress.ip_address(to[0]).version
        # From the bound address, as datagrams are: the receiver's per-address caps then
        # count this node, not whatever source address the kernel would pick.
        local = (host, 0) if same_family and not is_wildcard(host) else None
        async with asyncio.timeout(self._config.stream_connect_timeout):
            reader, writer = await asyncio.open_connection(*to, local_addr=local)
        try:
            async with asyncio.timeout(self._config.stream_frame_timeout):
                preamble = await reader.readexactly(CHALLENGE_PREAMBLE_BYTES)
            challenge = decode_challenge(preamble)
        except TimeoutError:
            writer.close()
            raise ConnectionError(
                f"no stream challenge within {self._config.stream_frame_timeout}s "
                "(overloaded, or a swarmnode older than stream version 2)"
            ) from None
        except BaseException:
            writer.close()
            raise
        return _Outbound(reader, writer, challenge)

    # --- inbound streams -------------------------------------------------------

    def _accept(self, conn: InboundStream) -> None:
        """A connection arrived: admit it to the unauthenticated pool and serve it."""
        if not self._running:
            conn.abort()
            return
        for old in self._admission.arrive(conn, conn.peer[0]):
            self._count(
                "streams_shed_unauthenticated",
                old.peer,
                "unauthenticated connection closed to admit a newer one",
            )
            old.abort()
        self._inbound.add(conn)
        self._spawn(self._serve_stream(conn))

    async def _serve_stream(self, conn: InboundStream) -> None:
        try:
            challenge = os.urandom(CHALLENGE_BYTES)
            conn.write(encode_challenge(challenge))
            sender = await self._authenticate(conn, challenge)
            if sender is None:
                return
            refusal = self._admission.authenticate(conn)
            if refusal is not None:
                self._count(_REFUSAL_COUNTERS[refusal], conn.peer, "inbound stream refused")
                conn.abort()
                return
            conn.write(ACK)
            await self._read_frames(conn, sender, challenge)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if self._running and not conn.aborted:
                self._count("dropped_decode", conn.peer, f"stream cut short: {exc!r}")
        except Exception:
            log.exception("stream handling failed source=%s", _fmt(conn.peer))
            self._counter["dropped_decode"].inc()
        finally:
            self._admission.leave(conn)
            self._inbound.discard(conn)
            conn.close()

    async def _authenticate(self, conn: InboundStream, challenge: bytes) -> Address | None:
        """The gossip address of an authenticated hello answering `challenge`, or None."""
        source = conn.peer
        try:
            async with asyncio.timeout(self._config.stream_hello_timeout):
                header = await conn.read_exactly(FRAME_HEADER_BYTES)
                length = frame_length(header, HELLO_MAX_FRAME)
                self._admission.hold(conn, FRAME_HEADER_BYTES + length)
                body = await conn.read_exactly(length)
        except TimeoutError:
            self._count("streams_hello_timeout", source, "no hello in time")
            conn.abort()
            return None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not conn.aborted:
                self._count("hellos_failed", source, f"closed before its hello: {exc!r}")
            return None
        except DecodeError as exc:
            self._count("hellos_failed", source, exc)
            return None
        self._counter["stream_bytes_in"].inc(FRAME_HEADER_BYTES + length)
        try:
            opened = open_envelope(body, self._keyring, context=HELLO_CONTEXT)
        except DecodeError as exc:
            # A wrong key counts as dropped_auth, as for datagrams: one counter to alert on.
            counter = _decode_counter(exc)
            self._count("hellos_failed" if counter == "dropped_decode" else counter, source, exc)
            return None
        try:
            hello = decode_hello(opened.payload)
        except VersionError as exc:
            self._count("dropped_version", source, exc)
            return None
        except DecodeError as exc:
            self._count("hellos_failed", source, exc)
            return None
        if not hmac.compare_digest(hello.challenge, challenge):
            self._count("hellos_replayed", source, "hello answers another connection's challenge")
            return None
        host, port = hello.address
        return (source[0], port) if is_wildcard(host) else hello.address

    async def _read_frames(self, conn: InboundStream, sender: Address, challenge: bytes) -> None:
        seq = 0
        while True:
            try:
                async with asyncio.timeout(2 * self._config.stream_idle_timeout):
                    first = await conn.read_exactly(1)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return
            except TimeoutError:
                log.debug("idle inbound stream closed sender=%s", _fmt(sender))
                return
            try:
                async with asyncio.timeout(self._config.stream_frame_timeout):
                    header = bytes(first) + await conn.read_exactly(FRAME_HEADER_BYTES - 1)
                    length = frame_length(header, self._config.max_stream_message)
                    refusal = self._admission.hold(conn, FRAME_HEADER_BYTES + length)
                    if refusal is not None:
                        self._count(
                            _REFUSAL_COUNTERS[refusal],
                            conn.peer,
                            f"frame of {length} bytes from {_fmt(sender)} refused",
                        )
                        return
                    body = await conn.read_exactly(length)
            except TimeoutError:
                self._count("stream_frames_timed_out", sender, "frame incomplete in time")
                return
            except DecodeError as exc:
                self._count(_decode_counter(exc), sender, exc)
                return
            try:
                self._counter["stream_bytes_in"].inc(FRAME_HEADER_BYTES + length)
                try:
                    opened = open_envelope(
                        body, self._keyring, context=frame_context(challenge, seq)
                    )
                    messages = unpack_datagram(opened.payload)
                except DecodeError as exc:
                    self._count(_decode_counter(exc), sender, exc)
                    return
                seq += 1
                self._counter["stream_messages_in"].inc(len(messages))
                self._deliver(sender, messages)
                conn.write(ACK)
            finally:
                self._admission.release(conn)

    # --- accounting ------------------------------------------------------------

    def _count_send_error(self, to: object, error: object) -> None:
        self._count("send_errors", to, error)

    def _count(self, counter: str, peer: object, error: object) -> None:
        child = self._counter[counter]
        child.inc()
        count = child.value
        level = logging.WARNING if count & (count - 1) == 0 else logging.DEBUG
        log.log(level, "%s peer=%s count=%d error=%s", counter, _fmt(peer), count, error)


def _decode_counter(exc: DecodeError) -> str:
    """The counter an envelope or frame refusal goes to."""
    if isinstance(exc, VersionError):
        return "dropped_version"
    if isinstance(exc, AuthenticationError):
        return "dropped_auth"
    if isinstance(exc, FrameTooLarge):
        return "dropped_oversize"
    return "dropped_decode"


def _fmt(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
