"""The bodies of forwarded requests and of their answers.

A request is `{k: "op", op, a: args, p: partitions or nil, g: agent or nil,
o: observe}`: a client operation, already validated, authorised and embedded
by the node that received it, to be run on an owner (on the listed
partitions only, for a scatter). `{k: "replica", ns, key, d: delta}` asks an
owner to commit a write's delta and answer once it is durable (writes with
`w` above 1). `wsub`, `wpoll` and `wstop` are the feeds of other nodes'
watches (`feeds.py`, which checks them).

An answer is `{r: result}`, `{e: [code, message]}` (the owner's error, raised
again on the caller as the same `SwarmError`), or `{n: [partitions]}` for
partitions the owner is still being handed (the caller asks another owner).
An answer may add `n` to a result too (a scatter served some partitions and
not others), and `w` with the committed entry before and after the write
(`obs`: encoded states) when the request asked to observe it.
"""

from __future__ import annotations

from typing import Any

from swarmnode.errors import DecodeError, SwarmError, error_from_wire

FORWARDED = frozenset(
    {
        "get",
        "smembers",
        "put",
        "delete",
        "expire",
        "incr",
        "sadd",
        "srem",
        "list",
        "search",
        "vsearch",
        "vsearch_many",
        "ns_stats",
    }
)
"""Operations a node runs for a peer."""


def op_request(
    op: str,
    args: dict[str, Any],
    partitions: list[int] | None = None,
    agent: str | None = None,
    observe: bool = False,
) -> dict[str, Any]:
    return {"k": "op", "op": op, "a": args, "p": partitions, "g": agent, "o": observe}


def replica_request(ns: str, key: str, delta: bytes) -> dict[str, Any]:
    return {"k": "replica", "ns": ns, "key": key, "d": delta}


def error_answer(exc: SwarmError) -> dict[str, Any]:
    return {"e": [exc.code, exc.message]}


def result_of(answer: Any) -> Any:
    """The result an answer carries; raises the owner's error as the same `SwarmError`."""
    if not isinstance(answer, dict):
        raise DecodeError("an answer is a map")
    if "e" in answer:
        err = answer["e"]
        if not isinstance(err, list | tuple) or len(err) != 2:
            raise DecodeError("an error answer is [code, message]")
        raise error_from_wire(str(err[0]), str(err[1]))
    return answer.get("r")


def not_ready(answer: Any) -> list[int]:
    """Partitions the owner said it does not hold yet."""
    if not isinstance(answer, dict):
        return []
    parts = answer.get("n") or []
    return [p for p in parts if isinstance(p, int)]
