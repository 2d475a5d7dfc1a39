"""The `swarmnode` command: run a node, or talk to the local one.

Readable output by default, `--json` for scripts. Exit codes scripts can rely on:

    0  success
    1  internal error in the node or the command
    2  bad request or bad usage (argparse exits 2 as well)
    3  not found
    4  conflict (if_absent lost, wrong type of key)
    5  too large
    6  node unavailable (not running, or a failure it reports as unavailable)
    7  forbidden (the token's agent may not do that, or a token is required)
    8  quota exceeded
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarmnode import __version__, health
from swarmnode.cli_ops import add_commands
from swarmnode.errors import SwarmError

EXIT_CODES = {
    "bad_request": 2,
    "clock_skew": 2,
    "not_found": 3,
    "conflict": 4,
    "wrong_type": 4,
    "too_large": 5,
    "unavailable": 6,
    "forbidden": 7,
    "quota_exceeded": 8,
}


def _jsonable(value: Any) -> Any:
    """A result as valid JSON: bytes and non-finite floats (which JSON lacks) tagged."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _dump(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False, sort_keys=True, allow_nan=False)


def _show_value(value: Any) -> str:
    return value if isinstance(value, str) else _dump(value)


def _fmt_ms(ms: int | None) -> str:
    if not ms:
        return "never"
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


# --- readable renderings ------------------------------------------------------


def _render_compact(r: dict[str, Any]) -> str:
    """What compact did; an agent's answer has no store-wide disk figures."""
    text = f"removed {r['entries_removed']} entries in {r['seconds']}s"
    if "disk_bytes_before" in r:
        text += f"; disk {r['disk_bytes_before']} -> {r['disk_bytes_after']} bytes"
    archive = r.get("archive")
    if archive and archive["entries"]:
        text += (
            f"\narchived {archive['entries']} entries, {archive['bytes']} bytes in "
            f"{archive['compressed_bytes']} ({archive['compression_ratio']}x)"
        )
    return text


def render_get(r: dict[str, Any]) -> str:
    lines = [_show_value(r["value"]) if r["type"] != "set" else "\n".join(r["value"])]
    if r.get("siblings") and len(r["siblings"]) > 1:
        lines.append(f"# {len(r['siblings'])} concurrent versions:")
        for s in r["siblings"]:
            lines.append(f"#   {_show_value(s['value'])}  (writer {s['writer']})")
    return "\n".join(lines)


def render_list(r: dict[str, Any]) -> str:
    with_values = any("value" in i for i in r["items"])
    rows = [
        [i["key"], i["type"], _fmt_ms(i.get("expires_at"))]
        + ([_show_value(i.get("value", ""))[:60]] if with_values else [])
        for i in r["items"]
    ]
    header = ["KEY", "TYPE", "EXPIRES"] + (["VALUE"] if with_values else [])
    out = _table(rows, header) if rows else "(no keys)"
    if r.get("cursor"):
        out += f"\n# more: --cursor {r['cursor']}"
    return out


def render_search(r: dict[str, Any]) -> str:
    rows = [
        [i["ns"], i["key"], i["match"], _show_value(i.get("value", ""))[:60]] for i in r["items"]
    ]
    out = _table(rows, ["NS", "KEY", "MATCH", "VALUE"]) if rows else "(no matches)"
    if r.get("truncated"):
        out += "\n# more matches exist: raise --limit"
    return out


def render_ns_list(r: dict[str, Any]) -> str:
    rows = [
        [
            n["name"],
            n["policy"],
            _duration(n.get("ttl")),
            str(n.get("dim") or "-"),
            str(n["entries"]),
            str(n["bytes"]),
        ]
        for n in r["namespaces"]
    ]
    return _table(rows, ["NAMESPACE", "POLICY", "TTL", "DIM", "ENTRIES", "BYTES"])


def render_ns_stats(r: dict[str, Any]) -> str:
    """One namespace as key: value lines; all of them (no name given) as a table."""
    if "namespaces" not in r:
        return _render_kv(r)
    rows = [
        [
            name,
            n["policy"],
            _duration(n.get("ttl")),
            str(n["entries"]),
            str(n["tombstones"]),
            str(n["bytes"]),
        ]
        for name, n in sorted(r["namespaces"].items())
    ]
    return _table(rows, ["NAMESPACE", "POLICY", "TTL", "ENTRIES", "TOMBSTONES", "BYTES"])


def _duration(seconds: float | None) -> str:
    """A TTL as people write it: 30d, 4h, 5m, 90s; "none" for no expiry."""
    if not seconds:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def render_members(r: dict[str, Any]) -> str:
    rows = [
        [
            m["node_id"] + (" *" if m.get("self") else ""),
            m["address"],
            m["state"],
            str(m["incarnation"]),
            f"{m['since_s']:.0f}s",
        ]
        for m in r["members"]
    ]
    return _table(rows, ["NODE", "ADDRESS", "STATE", "INCARNATION", "FOR"])


def render_status(r: dict[str, Any]) -> str:
    members = r.get("members", {})
    d = r.get("dissemination", {})
    ae = r.get("antientropy", {})
    t = r.get("transport", {})
    a = r.get("api", {})
    lines = [
        f"node        {r['node_id']}  gossip {r['address']}  up {r['uptime_s']:.0f}s",
        "members     " + ", ".join(f"{v} {k}" for k, v in sorted(members.items())),
        f"store       seq {r['store']['seq']}  {r['store']['disk_bytes']} bytes on disk  "
        f"{r['store']['namespaces']} namespaces",
        f"writer      {r['writer'].get('batches', 0)} commits for {r['writer'].get('ops', 0)} ops "
        f"(largest batch {r['writer'].get('max_batch', 0)})",
        f"gossip      {d.get('deltas_sent', 0)} deltas sent in {d.get('messages_sent', 0)} "
        f"messages, {d.get('deltas_received', 0)} received, {d.get('pending', 0)} pending",
        f"repair      {ae.get('rounds_ok', 0)} rounds ok, {ae.get('rounds_failed', 0)} failed, "
        f"{ae.get('keys_repaired', 0)} keys repaired, {ae.get('bytes_exchanged', 0)} bytes",
    ]
    if t:
        lines.append(
            f"transport   {t.get('datagrams_out', 0)} datagrams out, "
            f"{t.get('datagrams_in', 0)} in, "
            f"dropped auth {t.get('dropped_auth', 0)} decode {t.get('dropped_decode', 0)}"
        )
    if a:
        lines.append(
            f"clients     {a.get('connections_open', 0)} connected, "
            f"{a.get('requests', 0)} requests, "
            f"errors {a.get('errors', {})}"
        )
    if "consensus" in r:
        lines += render_consensus(r["consensus"], r["node_id"])
    for peer in r.get("membership", {}).get("refused", []):
        lines.append(
            f"refused     {peer['node_id']} at {peer['address']} for "
            f"{peer['since_s']:.0f}s: "
            + ", ".join(
                f"{m['setting']} {m['theirs']:g} (ours {m['ours']:g})" for m in peer["mismatches"]
            )
        )
    caches = [
        ("store", r["store"].get("read_cache")),
        ("vectors", r.get("vectors", {}).get("cache")),
    ]
    shown = [_cache_line(name, c) for name, c in caches if c]
    if shown:
        lines.append("caches      " + "; ".join(shown))
    if "analytics" in r:
        from swarmnode.analytics import render_analytics

        lines += ["", render_analytics(r["analytics"])]
    return "\n".join(lines)


def render_consensus(c: dict[str, Any] | None, self_id: str) -> list[str]:
    """The consensus group as this node sees it (the `consensus` section of `stats`)."""
    pad = " " * 12
    if c is None:
        return ["consensus   off on this node ([consensus] enabled = false)"]
    if not c.get("joined"):
        heard = c.get("leader")
        return [
            "consensus   not in the group yet"
            + (f" (leader {heard} announced itself)" if heard else " (no leader heard of)")
        ]

    def name(node: str | None) -> str:
        if node is None:
            return "none"
        return f"{node} (this node)" if node == self_id else node

    lines = [
        f"consensus   {c['role']}, term {c['term']}, leader {name(c.get('leader'))}, "
        f"commit {c['commit']}, applied {c['applied']}",
        f"{pad}voters {', '.join(c.get('voters') or []) or 'none'}"
        + (f"; learners {', '.join(c['learners'])}" if c.get("learners") else ""),
    ]
    lag = {n: k for n, k in (c.get("lag") or {}).items() if n != self_id}
    if lag:
        lines.append(f"{pad}lag " + ", ".join(f"{n} {k}" for n, k in lag.items()) + " entries")
    return lines


def _cache_line(name: str, c: dict[str, int]) -> str:
    looked = c["hits"] + c["misses"]
    ratio = f"{100 * c['hits'] / looked:.0f}% hits" if looked else "no reads yet"
    used = c["bytes"] / (1 << 20)
    return f"{name} {ratio}, {c['items']} items, {used:.1f} of {c['capacity_bytes'] >> 20} MiB"


def _render_kv(r: Any) -> str:
    if isinstance(r, dict):
        return "\n".join(f"{k}: {_show_value(v)}" for k, v in r.items())
    return _show_value(r)


# --- commands -----------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from swarmnode.client import Client

    return Client(args.socket, timeout=args.timeout)


def render_of(op: str) -> Callable[[Any], str]:
    """How a command shows its result when not asked for --json."""
    from swarmnode.vectors.cli import render_vsearch

    simple: dict[str, Callable[[Any], str]] = {
        "get": render_get,
        "list": render_list,
        "search": render_search,
        "ns_list": render_ns_list,
        "ns_stats": render_ns_stats,
        "members": render_members,
        "vsearch": render_vsearch,
        "put": lambda r: f"stored {r['ns']}/{r['key']}",
        "delete": lambda r: "deleted" if r["deleted"] else "nothing to delete",
        "expire": lambda r: f"{r['ns']}/{r['key']} expires {_fmt_ms(r['expires_at'])}",
        "incr": lambda r: str(r["value"]),
        "sadd": lambda r: f"added {r['added']}",
        "srem": lambda r: f"removed {r['removed']}",
        "smembers": lambda r: "\n".join(r["members"]),
        "ns_delete": lambda r: f"namespace {r['ns']} deleted",
        "sync": lambda r: (
            f"{r['rounds_ok']}/{r['peers']} peers synced, {r['keys_repaired']} keys "
            f"repaired, {r['bytes_exchanged']} bytes exchanged"
            + "".join(f"\nfailed: {f}" for f in r["failures"])
        ),
        "compact": _render_compact,
        "persist": lambda r: f"snapshot {r['session_id']} at {r['path']} ({r['bytes']} bytes)",
        "restore": lambda r: (
            f"restored {r['restored']}, unchanged {r['unchanged']}, failed {r['failed']}"
        ),
    }
    if op == "analytics":
        from swarmnode.analytics import render_analytics

        return render_analytics
    return simple.get(op, _render_kv)


def cmd_client(args: argparse.Namespace) -> tuple[Any, Callable[[Any], str]]:
    from swarmnode.cli_ops import operation_of, request_args

    with _client(args) as c:
        if args.cmd == "status":
            report = c.stats()
            report["analytics"] = c.call("analytics", timeframe=args.timeframe)
            return report, render_status
        spec = operation_of(args)
        return c.call(spec.name, **request_args(spec, args)), render_of(spec.name)


def cmd_watch(args: argparse.Namespace) -> int:
    c = _client(args)
    with c:
        try:
            for event in c.watch(ns=args.ns, prefix=args.prefix):
                if args.json:
                    print(_dump(event), flush=True)
                else:
                    value = f" = {_show_value(event['value'])}" if "value" in event else ""
                    print(
                        f"{event['event']} {event['ns']}/{event['key']}{value} ({event['origin']})",
                        flush=True,
                    )
        except KeyboardInterrupt:
            return 0
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # The node runs its own threads (writer, vector indexer, embedder); a BLAS
    # pool per numpy call on top of them oversubscribes small hosts several-fold.
    # It must be set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from swarmnode.config import ConfigError, load_config
    from swarmnode.logs import setup_logging
    from swarmnode.runtime.real import run_node

    overrides = {
        "data_dir": args.data_dir,
        "socket": args.socket,
        "bind": args.bind,
        "join": args.join or None,
        "node_id": args.node_id,
        "cluster_key_file": args.cluster_key_file,
        "insecure": args.insecure or None,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    if args.metrics_bind is not None:
        overrides["metrics"] = {"bind": args.metrics_bind}
    resp = {"socket": args.resp_socket, "bind": args.resp_bind}
    if any(v is not None for v in resp.values()):
        overrides["resp"] = {k: str(v) for k, v in resp.items() if v is not None}
    try:
        cfg = load_config(args.config, profile=args.profile, overrides=overrides)
    except ConfigError as exc:
        print(f"swarmnode: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    return run_node(cfg)


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from swarmnode.mcp.server import run
    except ImportError as exc:
        print(
            f"swarmnode: the MCP server needs the mcp SDK: pip install 'swarmnode[mcp]' ({exc})",
            file=sys.stderr,
        )
        return 1
    return run(args.socket, args.timeout, register=args.register)


def cmd_keygen(args: argparse.Namespace) -> int:
    from swarmnode.transport.keyring import KeyFileError, generate_key_file

    try:
        generate_key_file(args.path)
    except (KeyFileError, FileExistsError, OSError) as exc:
        print(f"swarmnode: {exc}", file=sys.stderr)
        return 1
    print(f"wrote a new cluster key to {args.path} (mode 0600); copy it to every node")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmnode", description="Decentralised memory for swarms of AI agents."
    )
    p.add_argument("--version", action="version", version=f"swarmnode {__version__}")
    # Also accepted before the command (`swarmnode --socket S get ...`); main()
    # hands them to the command unless it was given its own.
    p.add_argument("--socket", dest="socket_before", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", dest="json_before", action="store_true", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start a node (embedded defaults: a node on 127.0.0.1)")
    run.add_argument("--data-dir", type=Path, help="data directory ($SWARMNODE_DATA_DIR)")
    run.add_argument("--socket", type=Path, help="client socket path ($SWARMNODE_SOCKET)")
    run.add_argument("--bind", help="gossip address HOST:PORT (default 127.0.0.1:7117)")
    run.add_argument("--join", action="append", metavar="HOST:PORT", help="seed (repeatable)")
    run.add_argument(
        "--node-id", help="id for a new data directory (an existing one must already have it)"
    )
    run.add_argument("--cluster-key-file", type=Path, help="gossip encryption key file")
    run.add_argument("--insecure", action="store_true", help="allow plaintext gossip off loopback")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--profile", choices=["lan", "local"], help="timer profile (default lan)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", choices=["text", "json"])
    run.add_argument(
        "--metrics-bind",
        metavar="HOST:PORT",
        help="serve Prometheus /metrics (e.g. 127.0.0.1:9117)",
    )
    run.add_argument("--resp-socket", type=Path, help="serve the Redis protocol on this socket")
    run.add_argument(
        "--resp-bind", metavar="HOST:PORT", help="serve the Redis protocol on TCP (loopback)"
    )
    run.set_defaults(func=cmd_run)

    mcp = sub.add_parser("mcp", help="serve the MCP memory tools over stdio (for agents)")
    mcp.add_argument("--socket", type=Path, help="node socket ($SWARMNODE_SOCKET)")
    mcp.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per node operation (default 60)"
    )
    mcp.add_argument("--register", metavar="AGENT", help="register this agent on start, act as it")
    mcp.set_defaults(func=cmd_mcp)

    sub.add_parser(
        "check", help="check recorded histories for linearizability (see `swarmnode check -h`)"
    )
    keygen = sub.add_parser("keygen", help="write a new cluster key file")
    keygen.add_argument("path", type=Path)
    keygen.set_defaults(func=cmd_keygen)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", type=Path, help="node socket ($SWARMNODE_SOCKET)")
    common.add_argument("--json", action="store_true", help="print the raw result as JSON")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    # Options may come before or after a two-word command's second word; the nested
    # copies leave unset options alone instead of resetting what the first parsed.
    nested = argparse.ArgumentParser(add_help=False)
    nested.add_argument("--socket", type=Path, default=argparse.SUPPRESS)
    nested.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    nested.add_argument("--timeout", type=float, default=argparse.SUPPRESS)

    sp = sub.add_parser("status", help="node summary (stats) and analytics", parents=[common])
    sp.add_argument(
        "--timeframe", choices=["5m", "1h", "24h", "7d"], default="1h", help="analytics window"
    )
    sp.set_defaults(func=None)
    add_commands(sub, common, nested)
    sp = sub.add_parser("health", help="exit 0 if the node serves and has caught up with its peers")
    health.add_arguments(sp)
    sp.set_defaults(func=health.run)
    sp = sub.add_parser("watch", help="stream changes", parents=[common])
    sp.add_argument("--ns")
    sp.add_argument("--prefix")
    sp.set_defaults(func=cmd_watch)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "check":
        # Its own parser: `swarmnode check FILE... [--explain]` (see swarmnode/check/cli.py).
        from swarmnode.check.cli import main as check_main

        return check_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.socket_before is not None and getattr(args, "socket", None) is None:
        if not hasattr(args, "socket"):
            parser.error(f"{args.cmd} takes no --socket")
        args.socket = args.socket_before
    if args.json_before:
        if not hasattr(args, "json"):
            parser.error(f"{args.cmd} takes no --json")
        args.json = True
    try:
        return _run_command(args)
    except BrokenPipeError:
        # The reader went away (`swarmnode watch | head -1`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run_command(args: argparse.Namespace) -> int:
    try:
        if args.func is not None:
            return args.func(args)
        result, render = cmd_client(args)
    except SwarmError as exc:
        if getattr(args, "json", False):
            print(_dump({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
        else:
            print(f"swarmnode: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, 1)
    except KeyboardInterrupt:
        return 130
    print(_dump(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
