"""Random JSONL histories of a real register, linearizable by construction.

Concurrent clients run against one in-memory register per key. Every
operation is invoked, later takes effect atomically on the register (its
linearization point, where its result is computed), and later still
completes; the scheduler interleaves these moments across clients at random,
so invoke/complete windows overlap freely. Some operations end `fail` before
taking effect, some `info` (whether or not they took effect), some stay open
at the end. The property tests rely on such a history always being
linearizable; the benchmark uses it for long many-key histories.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass
class _Client:
    process: int
    f: str = ""
    key: str | None = None
    value: Any = None
    applied: bool = False
    result: Any = None
    busy: bool = False


def register_events(
    rng: random.Random,
    *,
    operations: int,
    keys: int = 1,
    processes: int = 5,
    values: int = 5,
    fail_rate: float = 0.05,
    info_rate: float = 0.05,
) -> list[dict[str, Any]]:
    """Events in the JSONL history format (see `jsonl`) of `operations` operations.

    With `keys` == 1 events carry no key (the history's one key); values are
    small integers below `values`, so reads, writes and compares collide often.
    """
    registers: dict[str | None, Any] = {}
    clients = [_Client(p) for p in range(processes)]
    events: list[dict[str, Any]] = []
    invoked = 0

    def emit(client: _Client, kind: str, value: Any) -> None:
        event: dict[str, Any] = {
            "index": len(events),
            "time": round(len(events) * 0.001, 6),
            "process": client.process,
            "type": kind,
            "f": client.f,
            "value": value,
        }
        if client.key is not None:
            event["key"] = client.key
        events.append(event)

    while invoked < operations or any(c.busy for c in clients):
        if invoked >= operations and rng.random() < info_rate:
            break  # whatever is still running stays open: pending for ever
        client = rng.choice(clients)
        if not client.busy:
            if invoked >= operations:
                continue
            invoked += 1
            client.busy, client.applied = True, False
            client.f = rng.choice(("read", "write", "cas"))
            client.key = f"k{rng.randrange(keys)}" if keys > 1 else None
            if client.f == "read":
                client.value = None
            elif client.f == "write":
                client.value = rng.randrange(values)
            else:
                expected = None if rng.random() < 0.2 else rng.randrange(values)
                client.value = [expected, rng.randrange(values)]
            emit(client, "invoke", client.value)
        elif not client.applied and rng.random() < fail_rate:
            client.busy = False
            emit(client, "fail", client.value)
        elif rng.random() < info_rate:
            if rng.random() < 0.5 and not client.applied:
                _apply(client, registers)
            client.busy = False
            emit(client, "info", client.value)
            client.process += processes
        elif not client.applied:
            _apply(client, registers)
            if client.f == "cas" and not client.result:
                # A compare that failed took no effect: the client reports `fail`.
                client.busy = False
                emit(client, "fail", client.value)
        else:
            client.busy = False
            emit(client, "ok", client.result if client.f == "read" else client.value)
    return events


def _apply(client: _Client, registers: dict[str | None, Any]) -> None:
    client.applied = True
    current = registers.get(client.key)
    if client.f == "read":
        client.result = current
    elif client.f == "write":
        registers[client.key] = client.value
    else:
        expected, new = client.value
        client.result = current == expected
        if client.result:
            registers[client.key] = new
