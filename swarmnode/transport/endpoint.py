"""The real network side of gossip: one UDP socket and one TCP listener per node.

Small messages travel as datagrams (asyncio-dgram), packed several to a packet
and each packet sealed in an envelope. A message that cannot fit a datagram
(a 1 MiB value, an anti-entropy state transfer) goes over a TCP stream to the
same port instead, framed and acknowledged (see framing.py), so it is either
delivered intact or counted as a send error; it is never dropped silently.

The endpoint is the trust boundary. Whatever arrives, the receive paths never
raise: a packet that fails authentication or decoding is counted and dropped,
and an exception from the node's `on_message` callback is logged and counted.
Sending never blocks the caller: datagrams wait in a bounded queue drained by
one task that honours the socket's backpressure, and each peer with stream
traffic gets one task and one kept-alive connection.

With no cluster key the endpoint refuses to bind anything but loopback unless
told `insecure=True`, so a forgotten key file cannot expose plaintext gossip to
a network.

Logs go to the `swarmnode.transport` logger as key=value pairs. Drops and send
errors are logged at WARNING on the 1st, 2nd, 4th, 8th... occurrence and at
DEBUG otherwise, so a flood of bad packets cannot flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncio_dgram

from swarmnode.errors import DecodeError
from swarmnode.sansio import Address, Message
from swarmnode.transport.config import TransportConfig
from swarmnode.transport.envelope import (
    AuthenticationError,
    envelope_overhead,
    open_envelope,
    seal_envelope,
)
from swarmnode.transport.framing import (
    ACK,
    FRAME_HEADER_BYTES,
    HELLO_MAX_FRAME,
    FrameTooLarge,
    decode_hello,
    encode_hello,
    frame,
    frame_length,
    is_wildcard,
    parse_address,
)
from swarmnode.transport.keyring import Keyring
from swarmnode.transport.packing import pack_messages, unpack_datagram

log = logging.getLogger("swarmnode.transport")

_PORT_ATTEMPTS = 8
"""Tries to find a port free for both UDP and TCP when binding port 0."""

_CLOSE_TURNS = 100
"""Loop turns `close()` waits for the UDP socket to be released."""

STAT_KEYS = (
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
    "send_errors",
    "handler_errors",
    "streams_refused",
)
"""Counters reported by `GossipEndpoint.stats()`.

bytes_* count UDP bytes including envelopes. stream_bytes_* count TCP frame bytes
including headers and hellos (out: acknowledged frames; in: frames read).
dropped_auth: packets or frames sealed with an unknown key, failing
authentication, or of the wrong kind (sealed vs plaintext). dropped_decode:
malformed envelopes, payloads, frames or hellos, and truncated or stalled
streams. dropped_oversize: inbound frames over the stream cap and outbound
messages too large even for a stream. dropped_backlog: outbound messages refused
because a send queue was full. send_errors: datagrams the socket refused, stream
messages not acknowledged by their receiver, invalid destination addresses.
handler_errors: exceptions raised by `on_message`. streams_refused: inbound
connections over `max_inbound_streams`.
"""


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


class GossipEndpoint:
    """UDP and TCP on one host:port, carrying sealed gossip messages to and from peers."""

    def __init__(
        self,
        bind: Address,
        keyring: Keyring | None,
        config: TransportConfig,
        on_message: Callable[[Address, Message], None],
        *,
        insecure: bool = False,
    ) -> None:
        host, port = bind
        check_bind_allowed(host, keyring, insecure)
        if type(port) is not int or not 0 <= port < 65536:
            raise ValueError(f"bind port must be in [0, 65535], got {port!r}")
        self._bind = (host, port)
        self._keyring = keyring
        self._config = config
        self._on_message = on_message
        self._budget = config.max_datagram - envelope_overhead(keyring)
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._address: Address | None = None
        self._udp: asyncio_dgram.aio.DatagramServer | None = None
        self._server: asyncio.Server | None = None
        self._send_queue: asyncio.Queue[tuple[Address, bytes]] = asyncio.Queue(
            config.send_queue_datagrams
        )
        self._links: dict[Address, asyncio.Queue[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbound: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._running = False

    @property
    def address(self) -> Address:
        """The bound address (with the port the OS chose when asked for port 0)."""
        if self._address is None:
            raise RuntimeError("endpoint not started")
        return self._address

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

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
        for attempt in range(_PORT_ATTEMPTS):
            udp = await asyncio_dgram.bind((host, port))
            chosen = udp.sockname[1]
            try:
                server = await asyncio.start_server(self._serve_stream, host, chosen)
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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Inbound handlers are not cancelled: Python 3.11's stream server logs a
        # cancelled handler as an error. Closing their connections ends them.
        for writer in self._inbound.values():
            writer.close()
        if self._inbound:
            await asyncio.wait(list(self._inbound), timeout=self._config.close_grace)
        await self._server.wait_closed()
        await self._udp_socket_closed()
        log.info("gossip endpoint closed address=%s stats=%s", _fmt(self.address), self._stats)

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
            try:
                self._send_queue.put_nowait((to, seal_envelope(payload, self._keyring)))
            except asyncio.QueueFull:
                self._count("dropped_backlog", to, "datagram send queue full")
        for payload in packing.streamed:
            self._send_stream(to, seal_envelope(payload, self._keyring))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
                self._stats["dropped_decode"] += 1

    def _on_datagram(self, data: bytes, sender: Address) -> None:
        self._stats["datagrams_in"] += 1
        self._stats["bytes_in"] += len(data)
        try:
            messages = unpack_datagram(open_envelope(data, self._keyring))
        except AuthenticationError as exc:
            self._count("dropped_auth", sender, exc)
            return
        except DecodeError as exc:
            self._count("dropped_decode", sender, exc)
            return
        self._deliver(sender, messages)

    def _deliver(self, sender: Address, messages: list[Message]) -> None:
        for message in messages:
            try:
                self._on_message(sender, message)
            except Exception:
                self._stats["handler_errors"] += 1
                log.exception("on_message failed sender=%s t=%s", _fmt(sender), message["t"])

    async def _send_loop(self) -> None:
        assert self._udp is not None
        while True:
            to, packet = await self._send_queue.get()
            try:
                await self._send_datagram(to, packet)
            finally:
                self._send_queue.task_done()

    async def _send_datagram(self, to: Address, packet: bytes) -> None:
        assert self._udp is not None
        # asyncio-dgram reports a socket error on the next call after it happened;
        # take those first so they do not cost this packet.
        while True:
            try:
                _ = self._udp.exception
                break
            except Exception as exc:
                self._count_send_error("-", exc)
        try:
            await self._udp.send(packet, to)
        except Exception as exc:
            self._count_send_error(to, exc)
            return
        self._stats["datagrams_out"] += 1
        self._stats["bytes_out"] += len(packet)

    def _send_stream(self, to: Address, envelope: bytes) -> None:
        if len(envelope) > self._config.max_stream_message:
            self._count(
                "dropped_oversize",
                to,
                f"message of {len(envelope)} bytes exceeds max_stream_message "
                f"{self._config.max_stream_message}",
            )
            return
        queue = self._links.get(to)
        if queue is None:
            queue = asyncio.Queue(self._config.stream_queue_messages)
            self._links[to] = queue
            self._spawn(self._run_link(to, queue))
        try:
            queue.put_nowait(frame(envelope))
        except asyncio.QueueFull:
            self._count("dropped_backlog", to, "stream send queue full")

    async def _run_link(self, to: Address, queue: asyncio.Queue[bytes]) -> None:
        """Carry one peer's stream messages over a kept-alive connection."""
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(self._config.stream_idle_timeout):
                        framed = await queue.get()
                except TimeoutError:
                    if queue.empty():
                        del self._links[to]
                        return
                    continue
                try:
                    connection = await self._send_frame(to, framed, connection)
                finally:
                    queue.task_done()
        finally:
            if self._links.get(to) is queue:
                del self._links[to]
            if connection is not None:
                connection[1].close()

    async def _send_frame(
        self,
        to: Address,
        framed: bytes,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Send one frame and wait for its ACK; returns the connection to keep, if any."""
        reused = connection is not None
        while True:
            try:
                acks, sent = 1, len(framed)
                if connection is None:
                    async with asyncio.timeout(self._config.stream_connect_timeout):
                        connection = await asyncio.open_connection(*to)
                    hello = frame(seal_envelope(encode_hello(self.address), self._keyring))
                    connection[1].write(hello)
                    acks, sent = 2, sent + len(hello)
                reader, writer = connection
                async with asyncio.timeout(self._config.stream_frame_timeout):
                    writer.write(framed)
                    await writer.drain()
                    if await reader.readexactly(acks) != ACK * acks:
                        raise ConnectionError("peer answered with something other than ACK")
            except Exception as exc:
                if connection is not None:
                    connection[1].close()
                    connection = None
                if reused:
                    # The peer may have closed a kept connection while it sat idle.
                    reused = False
                    continue
                self._count_send_error(to, f"stream: {type(exc).__name__}: {exc}")
                return None
            self._stats["stream_messages_out"] += 1
            self._stats["stream_bytes_out"] += sent
            return connection

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        source = (peer[0], peer[1]) if peer else ("?", 0)
        if not self._running:
            writer.close()
            return
        if len(self._inbound) >= self._config.max_inbound_streams:
            self._count("streams_refused", source, "too many inbound streams")
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._inbound[task] = writer
        try:
            await self._read_stream(reader, writer, source)
        except asyncio.IncompleteReadError as exc:
            self._count_stream_failure(
                "dropped_decode", source, f"stream truncated after {len(exc.partial)} bytes"
            )
        except TimeoutError:
            self._count_stream_failure("dropped_decode", source, "stream stalled")
        except OSError as exc:
            log.debug("stream closed by error source=%s error=%s", _fmt(source), exc)
        except Exception:
            log.exception("stream handling failed source=%s", _fmt(source))
            self._stats["dropped_decode"] += 1
        finally:
            del self._inbound[task]
            writer.close()

    def _count_stream_failure(self, counter: str, source: Address, error: object) -> None:
        if self._running:
            self._count(counter, source, error)

    async def _read_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: Address
    ) -> None:
        async with asyncio.timeout(self._config.stream_hello_timeout):
            hello = await self._read_frame(reader, source, HELLO_MAX_FRAME)
        if hello is None:
            return
        try:
            sender = decode_hello(hello)
        except DecodeError as exc:
            self._count("dropped_decode", source, exc)
            return
        if is_wildcard(sender[0]):
            sender = (source[0], sender[1])
        writer.write(ACK)
        while True:
            async with asyncio.timeout(2 * self._config.stream_idle_timeout):
                header = await reader.read(FRAME_HEADER_BYTES)
                if not header:
                    return
                if len(header) < FRAME_HEADER_BYTES:
                    header += await reader.readexactly(FRAME_HEADER_BYTES - len(header))
            async with asyncio.timeout(self._config.stream_frame_timeout):
                payload = await self._read_frame(
                    reader, sender, self._config.max_stream_message, header
                )
            if payload is None:
                return
            try:
                messages = unpack_datagram(payload)
            except DecodeError as exc:
                self._count("dropped_decode", sender, exc)
                return
            self._stats["stream_messages_in"] += len(messages)
            self._deliver(sender, messages)
            writer.write(ACK)

    async def _read_frame(
        self,
        reader: asyncio.StreamReader,
        source: Address,
        limit: int,
        header: bytes | None = None,
    ) -> bytes | None:
        """One frame's opened payload, or None after counting why the stream must end."""
        if header is None:
            header = await reader.readexactly(FRAME_HEADER_BYTES)
        try:
            length = frame_length(header, limit)
        except FrameTooLarge as exc:
            self._count("dropped_oversize", source, exc)
            return None
        except DecodeError as exc:
            self._count("dropped_decode", source, exc)
            return None
        body = await reader.readexactly(length)
        self._stats["stream_bytes_in"] += FRAME_HEADER_BYTES + length
        try:
            return open_envelope(body, self._keyring)
        except AuthenticationError as exc:
            self._count("dropped_auth", source, exc)
        except DecodeError as exc:
            self._count("dropped_decode", source, exc)
        return None

    def _count_send_error(self, to: object, error: object) -> None:
        self._count("send_errors", to, error)

    def _count(self, counter: str, peer: object, error: object) -> None:
        count = self._stats[counter] + 1
        self._stats[counter] = count
        level = logging.WARNING if count & (count - 1) == 0 else logging.DEBUG
        log.log(level, "%s peer=%s count=%d error=%s", counter, _fmt(peer), count, error)


def _fmt(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
