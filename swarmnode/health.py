"""`swarmnode health`: does this node serve, and has it caught up with its peers?

For probes (systemd, containers, Kubernetes) and scripts. Exit 0 and a
one-line summary when healthy; otherwise a one-line reason and:

    1  serving, but not caught up (reason says which condition failed)
    6  not serving (no node on the socket, or no answer within --timeout)

`--live` asks only whether the node serves (answers `ping`): what a liveness
probe should ask, since restarting a node that is cut off from its peers
does not reconnect it. Without it (the readiness question), the node has
caught up when all of these hold:

- membership is settled: no member is `suspect` (a suspicion is resolved
  within seconds, one way or the other);
- it is not alone against its will: if it knows of peers, at least one is
  alive (a node whose every peer is dead serves only its own copy);
- anti-entropy is current: with live peers, a round ended ok within
  `--max-repair-age` seconds (the default is 12 rounds of the `lan`
  profile's 5 s interval), so whatever gossip missed has been repaired
  recently;
- gossip is keeping up: at most `--max-pending` deltas wait to be sent.

A node with no peers at all (a single-node setup) is healthy once it serves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from swarmnode.client import Client
from swarmnode.errors import SwarmError

NOT_CAUGHT_UP = 1
NOT_SERVING = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, help="node socket ($SWARMNODE_SOCKET)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request (5)")
    parser.add_argument("--live", action="store_true", help="only ask whether the node serves")
    parser.add_argument(
        "--max-repair-age",
        type=float,
        default=60.0,
        help="seconds since the last good anti-entropy round (60)",
    )
    parser.add_argument(
        "--max-pending", type=int, default=10_000, help="deltas waiting to be gossiped (10000)"
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def assess(
    stats: dict[str, Any], analytics: dict[str, Any], args: argparse.Namespace
) -> str | None:
    """The reason the node has not caught up, or None if it has."""
    members = stats.get("members") or {}
    alive_peers = max(0, members.get("alive", 0) - 1)
    known_peers = sum(members.values()) - 1
    suspect = members.get("suspect", 0)
    if suspect:
        return f"membership not settled: {suspect} member(s) suspect"
    if known_peers > 0 and alive_peers == 0:
        return f"no peer alive ({known_peers} known, none reachable)"
    pending = (stats.get("dissemination") or {}).get("pending", 0)
    if pending > args.max_pending:
        return f"gossip behind: {pending} deltas pending (bound {args.max_pending})"
    if alive_peers:
        age = (analytics.get("replication") or {}).get("last_repair_age_s")
        if age is None:
            return "no anti-entropy round has completed yet"
        if age > args.max_repair_age:
            return f"last good anti-entropy round {age:.0f}s ago (bound {args.max_repair_age:g}s)"
    return None


def run(args: argparse.Namespace) -> int:
    """Print one line and return the exit status."""
    try:
        with Client(args.socket, timeout=args.timeout) as client:
            pong = client.ping()
            if args.live:
                return _say(args, 0, f"serving: node {pong.get('node_id')}")
            stats = client.stats()
            analytics = client.call("analytics", timeframe="5m")
    except SwarmError as exc:
        return _say(args, NOT_SERVING, f"not serving: {exc.message}")
    reason = assess(stats, analytics, args)
    if reason is not None:
        return _say(args, NOT_CAUGHT_UP, f"not caught up: {reason}")
    members = stats.get("members") or {}
    peers = max(0, members.get("alive", 0) - 1)
    age = (analytics.get("replication") or {}).get("last_repair_age_s")
    repair = f", last repair {age:.0f}s ago" if peers and age is not None else ""
    return _say(args, 0, f"ok: node {stats.get('node_id')}, {peers} peers alive{repair}")


def _say(args: argparse.Namespace, code: int, line: str) -> int:
    if getattr(args, "json", False):
        import json

        print(json.dumps({"healthy": code == 0, "exit": code, "reason": line}))
    else:
        print(line)
    return code


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (`python -m swarmnode.health`) until the CLI wires `health`."""
    parser = argparse.ArgumentParser(prog="swarmnode health", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
