"""The seam between protocol state machines and whatever runs them.

Every protocol core (SWIM, dissemination, anti-entropy) is driven the same way:
the runtime calls `tick(now)` and `receive(now, sender, message)` and carries out
the returned `Output`. `now` is seconds on a monotonic clock supplied by the
runtime (virtual in the simulator); randomness comes from a `random.Random`
handed to the core at construction. Nothing here touches a socket or a clock,
which is what lets the simulator replay a whole cluster from one seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Address = tuple[str, int]
"""A gossip endpoint: (host, port). Hosts are literal IP addresses."""

Message = dict[str, Any]
"""A gossip message: a msgpack-able map whose "t" field names its type."""


@dataclass
class Output:
    """What one step of a state machine asks the runtime to do."""

    send: list[tuple[Address, Message]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def extend(self, other: Output) -> Output:
        self.send.extend(other.send)
        self.events.extend(other.events)
        return self
