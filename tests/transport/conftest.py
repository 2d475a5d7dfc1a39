"""Endpoints on 127.0.0.1 with OS-chosen ports, and a way to wait for what they receive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from swarmnode.sansio import Address, Message
from swarmnode.transport import GossipEndpoint, Keyring, TransportConfig

DEADLINE = 20.0
"""Seconds before a wait gives up; a hang guard, never a performance assertion."""


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not predicate():
            await asyncio.sleep(0.005)


class Node:
    """An endpoint plus everything it delivered, in order."""

    def __init__(self, endpoint: GossipEndpoint, inbox: list[tuple[Address, Message]]) -> None:
        self.endpoint = endpoint
        self.inbox = inbox

    @property
    def address(self) -> Address:
        return self.endpoint.address

    def stat(self, name: str) -> int:
        return self.endpoint.stats()[name]

    def messages(self) -> list[Message]:
        return [message for _, message in self.inbox]


@pytest.fixture
async def make_node() -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    started: list[GossipEndpoint] = []

    async def factory(
        keys: list[bytes] | None,
        *,
        config: TransportConfig | None = None,
        on_message: Callable[[Address, Message], None] | None = None,
        bind: Address = ("127.0.0.1", 0),
        clock_offset: float = 0.0,
    ) -> Node:
        """`clock_offset`: seconds added to the endpoint's wall clock, to play a wrong clock."""
        inbox: list[tuple[Address, Message]] = []

        def record(sender: Address, message: Message) -> None:
            inbox.append((sender, message))
            if on_message is not None:
                on_message(sender, message)

        endpoint = GossipEndpoint(
            bind,
            Keyring(keys) if keys is not None else None,
            config or TransportConfig.local(),
            record,
            wall_clock=lambda: time.time() + clock_offset,
        )
        await endpoint.start()
        started.append(endpoint)
        return Node(endpoint, inbox)

    yield factory
    for endpoint in started:
        await endpoint.close()


def pytest_asyncio_loop_factories(config, item):
    """Run every endpoint test on both loops: nodes run on uvloop, the stdlib loop is the reference.

    The two differ in how UDP socket errors surface, which is exactly what these tests probe.
    """
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
