#!/usr/bin/env python3
"""Fuzz a running node: random and mutated frames on its client socket and gossip port.

A real `swarmnode run` process (keyless, on loopback, so plaintext datagrams
reach the message decoders and protocol cores instead of stopping at the
envelope's authentication) takes, for a fixed count of inputs, a mix of

- client frames: corpus frames (fuzz/corpus/client_frames) mutated, random
  bytes, and lengths past max_frame, each on a fresh connection;
- gossip datagrams: corpus datagrams (fuzz/corpus/gossip_datagram) mutated
  and random, over UDP;
- stream frames: random and mutated bytes on a TCP connection to the gossip
  port;

while a well-behaved client keeps writing to a namespace of its own. After
the count: the node must still answer, every write it acknowledged must be
there with its value, the process must never have exited, and its RSS must
stay within a bound of where it started.

    python fuzz/live_node.py --count 200000          # results into fuzz/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY = re.compile(r"^swarmnode ready: node (\S+) gossip (\S+):(\d+) socket (\S+)$")
NS = "livefuzz-d1f4e7"


@dataclass
class LiveFuzzResult:
    count: int
    seconds: float
    sent: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    lost: list[str] = field(default_factory=list)
    answered_after: bool = False
    exited: int | None = None
    rss_start: int = 0
    rss_max: int = 0
    rss_end: int = 0
    rss_bound: int = 0
    stats: dict = field(default_factory=dict)
    log_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.answered_after
            and self.exited is None
            and not self.lost
            and self.rss_max <= self.rss_bound
            and not self.log_errors
        )


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.randrange(5)
        if choice == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif choice == 1:
            at = rng.randrange(len(b) + 1)
            b[at:at] = rng.randbytes(rng.randint(1, 16))
        elif choice == 2 and b:
            del b[rng.randrange(len(b)) :][: rng.randint(1, 8)]
        elif choice == 3 and len(b) > 4:
            at = rng.randrange(len(b) - 3)
            b[at : at + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xdf\xff\xff\xff"]
            )
        elif b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def corpus(name: str) -> list[bytes]:
    d = HERE / "corpus" / name
    return [p.read_bytes() for p in sorted(d.iterdir())] if d.exists() else []


def start_node(base: Path) -> tuple[subprocess.Popen[bytes], Path, tuple[str, int]]:
    exe = Path(sys.executable).parent / "swarmnode"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "swarmnode.cli"]
    proc = subprocess.Popen(
        [*cmd, "run", "--data-dir", str(base / "d"), "--bind", "127.0.0.1:0", "--profile", "local"],
        stdout=subprocess.PIPE,
        stderr=open(base / "node.log", "ab"),  # noqa: SIM115
        env={k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    for raw in proc.stdout:
        m = READY.match(raw.decode(errors="replace").strip())
        if m:
            return proc, Path(m.group(4)), (m.group(2), int(m.group(3)))
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"the node did not start: {(base / 'node.log').read_text()[-2000:]}")


def send_client(path: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except OSError:
            pass


def send_stream(addr: tuple[str, int], data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(addr)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except OSError:
            pass


def run_live_fuzz(count: int, seed: int = 1, rss_slack: int = 96 << 20) -> LiveFuzzResult:
    from swarmnode.api.framing import encode_frame
    from swarmnode.client import Client
    from swarmnode.errors import SwarmError

    rng = random.Random(seed)
    frames = corpus("client_frames") or [encode_frame({"id": 1, "op": "ping", "args": {}})]
    grams = corpus("gossip_datagram") or [b"\x02\x91\x81\xa1t\xa9swim.ping"]
    base = Path(tempfile.mkdtemp(prefix="snlf-", dir="/tmp"))
    proc, sock_path, gossip = start_node(base)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    result = LiveFuzzResult(count, 0.0, {"client": 0, "datagram": 0, "stream": 0})
    acked: dict[str, int] = {}
    began = time.monotonic()
    try:
        good = Client(sock_path, timeout=30.0)
        good.ping()
        result.rss_start = result.rss_max = rss(proc.pid)
        result.rss_bound = result.rss_start + rss_slack
        for i in range(count):
            kind = rng.choices(("client", "datagram", "stream"), weights=(45, 45, 10))[0]
            if kind == "client":
                r = rng.random()
                if r < 0.8:
                    data = mutate(rng, rng.choice(frames))
                elif r < 0.95:
                    data = rng.randbytes(rng.randint(0, 512))
                else:
                    data = rng.randbytes(4) + rng.randbytes(rng.randint(0, 64))
                send_client(sock_path, data)
            elif kind == "datagram":
                data = (
                    mutate(rng, rng.choice(grams))
                    if rng.random() < 0.85
                    else rng.randbytes(rng.randint(1, 1400))
                )
                with contextlib.suppress(OSError):
                    udp.sendto(data[:1400], gossip)
            else:
                body = rng.randbytes(rng.randint(0, 256))
                if rng.random() < 0.5:
                    body = len(body).to_bytes(4, "big") + b"\x02" + body
                send_stream(gossip, body)
            result.sent[kind] += 1
            if i % 50 == 0:
                key = f"k{i}"
                try:
                    good.put(NS, key, i)
                    acked[key] = i
                except SwarmError:
                    pass
            if i % 1000 == 0:
                if proc.poll() is not None:
                    break
                result.rss_max = max(result.rss_max, rss(proc.pid))
                if i % 10000 == 0:
                    print(
                        f"{i}/{count} inputs, rss {result.rss_max >> 20} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
        result.exited = proc.poll()
        if result.exited is None:
            result.rss_end = rss(proc.pid)
            result.rss_max = max(result.rss_max, result.rss_end)
            check = Client(sock_path, timeout=60.0)
            result.answered_after = bool(check.ping().get("pong"))
            for key, value in acked.items():
                try:
                    got = check.get(NS, key)["value"]
                except SwarmError as exc:
                    got = exc.code
                if got != value:
                    result.lost.append(f"{key}: {got!r} != {value!r}")
            result.stats = {
                k: v
                for k, v in check.stats().items()
                if k in ("counters", "transport", "api", "members", "store")
            }
            check.close()
        good.close()
    finally:
        result.acked = len(acked)
        result.seconds = round(time.monotonic() - began, 1)
        udp.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log = (base / "node.log").read_text(errors="replace").splitlines()
        result.log_errors = [x for x in log if " ERROR " in x or x.startswith("Traceback")][:20]
        shutil.rmtree(base, ignore_errors=True)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--record", action="store_true", help="add the result to fuzz/results.json")
    args = p.parse_args()
    r = run_live_fuzz(args.count, args.seed)
    summary = {
        "ok": r.ok,
        "count": r.count,
        "seed": args.seed,
        "seconds": r.seconds,
        "sent": r.sent,
        "acked_writes": r.acked,
        "lost": r.lost[:20],
        "answered_after": r.answered_after,
        "exited": r.exited,
        "rss_start_mib": round(r.rss_start / 2**20, 1),
        "rss_max_mib": round(r.rss_max / 2**20, 1),
        "rss_end_mib": round(r.rss_end / 2**20, 1),
        "rss_bound_mib": round(r.rss_bound / 2**20, 1),
        "log_errors": r.log_errors,
        "members": r.stats.get("members", {}),
        "store": r.stats.get("store", {}),
        "counters": r.stats.get("counters", {}),
        "transport": r.stats.get("transport", {}),
    }
    print(json.dumps(summary, indent=2))
    if args.record:
        sys.path.insert(0, str(HERE))
        from run import load_results, save_results

        results = load_results()
        results.setdefault("live", []).append(summary)
        save_results(results)
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
