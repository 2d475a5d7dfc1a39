"""Run the fuzz targets, keep their corpora small, and record what was run in RESULTS.md.

    python fuzz/run.py                         # every target, 1,000,000 inputs each
    python fuzz/run.py --runs 50000 entry_codec client_frames
    python fuzz/run.py --alloc                 # peak allocation per input, no fuzzing

For each target: atheris (libFuzzer) runs `--runs` inputs starting from
fuzz/corpus/<target>/ with a per-input timeout (a hang is a finding) and an
RSS limit; a crash, hang or out-of-memory input is written to fuzz/crashes/
and the run stops with its reproducer. Then the corpus and what the run
found are merged and minimised back into fuzz/corpus/<target>/ (libFuzzer
`-merge=1` keeps the smallest set with the same coverage). Counts add up
across runs in fuzz/results.json, from which RESULTS.md is written.

`--alloc` replays the corpus plus random and mutated inputs through each
target under tracemalloc and records the largest peak allocation any one
input caused, against the target's cap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"

# target -> (max input length, peak allocation cap in bytes for one input, why)
TARGETS: dict[str, tuple[int, int, str]] = {
    "client_frames": (4096, 1 << 20, "frames over max_frame are refused unread"),
    "gossip_datagram": (1400, 1 << 20, "one datagram is at most 1400 bytes"),
    "envelope": (1400, 1 << 20, "one datagram is at most 1400 bytes"),
    "stream_frames": (256, 1 << 20, "the header and hello are tiny"),
    "stored_records": (2048, 1 << 20, "records are read one at a time"),
    "entry_codec": (4096, 4 << 20, "container sizes are bounded by the input"),
    "config_file": (4096, 4 << 20, "an operator's file"),
    "snapshot_file": (65536, 16 << 20, "LMDB maps the file; only its pages are read"),
}
_DONE = re.compile(r"Done (\d+) (?:runs )?in (\d+) second")
_COV = re.compile(r"cov: (\d+) ft: (\d+)")


def load_results() -> dict:
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {"targets": {}, "alloc": {}}


def save_results(results: dict) -> None:
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    RESULTS_MD.write_text(render(results))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    # libFuzzer's merge re-runs the target script itself (its shebang finds python3
    # on PATH), so this interpreter must come first there.
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    return e


def fuzz(target: str, runs: int, timeout: int) -> dict:
    max_len = TARGETS[target][0]
    corpus = HERE / "corpus" / target
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    cmd = [
        sys.executable,
        str(HERE / f"{target}.py"),
        str(work),
        str(corpus),
        f"-atheris_runs={runs}",
        f"-max_len={max_len}",
        f"-timeout={timeout}",
        "-rss_limit_mb=1024",
        f"-artifact_prefix={crashes}/{target}-",
        "-print_final_stats=1",
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), check=False)
    seconds = time.monotonic() - started
    out = done.stdout + done.stderr
    m = _DONE.search(out)
    covs = _COV.findall(out)
    crashed = [line for line in out.splitlines() if "Test unit written to" in line]
    executed = int(m.group(1)) if m else 0
    if not m:
        stats = re.search(r"stat::number_of_executed_units: (\d+)", out)
        executed = int(stats.group(1)) if stats else 0
    record = {
        "inputs": executed,
        "seconds": round(seconds, 1),
        "cov": int(covs[-1][0]) if covs else None,
        "ft": int(covs[-1][1]) if covs else None,
        "crashes": crashed,
        "exit": done.returncode,
    }
    if crashed or (done.returncode != 0 and not m):
        (crashes / f"{target}.log").write_text(out[-20000:])
    minimise(target, work)
    shutil.rmtree(work, ignore_errors=True)
    return record


def minimise(target: str, found: Path) -> None:
    corpus = HERE / "corpus" / target
    merged = Path(tempfile.mkdtemp(prefix=f"fuzz-min-{target}-"))
    cmd = [
        sys.executable,
        str(HERE / f"{target}.py"),
        "-merge=1",
        f"-max_len={TARGETS[target][0]}",
        str(merged),
        str(corpus),
        str(found),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), check=False)
    if done.returncode == 0 and any(merged.iterdir()):
        shutil.rmtree(corpus)
        shutil.copytree(merged, corpus)
    shutil.rmtree(merged, ignore_errors=True)


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            b[rng.randrange(len(b) + 1) : 0] = bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 8))
            )
        elif op == 2 and b:
            del b[rng.randrange(len(b))]
        elif b:
            at = rng.randrange(len(b))
            b[at : at + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\xdd\xff\xff\xff"]
            )
    return bytes(b)


def alloc(target: str, extra: int) -> dict:
    """Peak allocation of each input, run in this process under tracemalloc."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"fuzz_{target}", HERE / f"{target}.py")
    assert spec and spec.loader
    sys.path.insert(0, str(HERE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check = module.check
    rng = random.Random(target)
    corpus = [p.read_bytes() for p in sorted((HERE / "corpus" / target).iterdir())]
    inputs = list(corpus)
    for _ in range(extra):
        if corpus and rng.random() < 0.8:
            inputs.append(mutate(rng, rng.choice(corpus)))
        else:
            inputs.append(rng.randbytes(rng.randint(0, TARGETS[target][0])))
    worst, worst_len = 0, 0
    tracemalloc.start()
    for data in inputs:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        check(data)
        peak = tracemalloc.get_traced_memory()[1] - base
        if peak > worst:
            worst, worst_len = peak, len(data)
    tracemalloc.stop()
    cap = TARGETS[target][1]
    return {"inputs": len(inputs), "peak_bytes": worst, "at_input_len": worst_len, "cap": cap}


def render(results: dict) -> str:
    lines = [
        "# Fuzzing results",
        "",
        "Coverage-guided fuzzing (atheris 3, libFuzzer) of every decoder that takes bytes",
        "from outside. Written by `python fuzz/run.py` from `fuzz/results.json`; counts add",
        "up over runs. `cov`/`ft` are libFuzzer's edge and feature counts at the end of the",
        "latest run (Python bytecode edges, with atheris's instrumentation).",
        "",
        "| target | inputs run | runs | latest cov | latest ft | corpus files | crashes |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        r = results["targets"].get(target)
        if not r:
            lines.append(f"| {target} | 0 | 0 | - | - | - | - |")
            continue
        corpus = HERE / "corpus" / target
        files = len(list(corpus.iterdir())) if corpus.exists() else 0
        lines.append(
            f"| {target} | {r['inputs']:,} | {len(r['runs'])} | {r['runs'][-1]['cov']} | "
            f"{r['runs'][-1]['ft']} | {files} | {sum(len(x['crashes']) for x in r['runs'])} |"
        )
    if results.get("alloc"):
        lines += [
            "",
            "## Peak allocation per input (tracemalloc)",
            "",
            "| target | inputs | worst peak | at input length | cap | within |",
            "|---|---|---|---|---|---|",
        ]
        for target, a in results["alloc"].items():
            lines.append(
                f"| {target} | {a['inputs']:,} | {a['peak_bytes']:,} B | {a['at_input_len']} | "
                f"{a['cap']:,} B ({TARGETS[target][2]}) | "
                f"{'yes' if a['peak_bytes'] <= a['cap'] else '**no**'} |"
            )
    live = results.get("live", [])
    if live:
        lines += [
            "",
            "## Live node (`python fuzz/live_node.py --count N --record`)",
            "",
            "| inputs | seed | client frames | datagrams | stream | acked writes | lost "
            "| RSS start / max MiB | phantom members | errors logged | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in live:
            members = r.get("members", {})
            lines.append(
                f"| {r['count']:,} | {r['seed']} | {r['sent']['client']:,} | "
                f"{r['sent']['datagram']:,} | {r['sent']['stream']:,} | {r['acked_writes']} | "
                f"{len(r['lost'])} | {r['rss_start_mib']} / {r['rss_max_mib']} | "
                f"{sum(members.values()) - 1 if members else '-'} | {len(r['log_errors'])} | "
                f"{'ok' if r['ok'] else '**failed**'} |"
            )
    extra = results.get("notes", [])
    if extra:
        lines += ["", "## Findings", ""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", default=list(TARGETS))
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--timeout", type=int, default=10, help="seconds per input before a hang")
    p.add_argument("--alloc", action="store_true", help="measure peak allocation instead")
    p.add_argument("--alloc-inputs", type=int, default=20000)
    args = p.parse_args()
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {list(TARGETS)}")
    results = load_results()
    failed = False
    for target in args.targets:
        if args.alloc:
            a = alloc(target, args.alloc_inputs)
            results.setdefault("alloc", {})[target] = a
            print(f"{target}: peak {a['peak_bytes']:,} B over {a['inputs']} inputs", flush=True)
            failed |= a["peak_bytes"] > a["cap"]
        else:
            r = fuzz(target, args.runs, args.timeout)
            entry = results["targets"].setdefault(target, {"inputs": 0, "runs": []})
            entry["inputs"] += r["inputs"]
            entry["runs"].append(r)
            print(
                f"{target}: {r['inputs']:,} inputs in {r['seconds']}s, cov {r['cov']}, "
                f"crashes {len(r['crashes'])}",
                flush=True,
            )
            failed |= bool(r["crashes"]) or r["inputs"] < args.runs
        save_results(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
