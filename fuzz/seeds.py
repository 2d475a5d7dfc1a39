"""Write the seed inputs of every target from the real encoders (run once; the corpus is kept).

Datagrams are captured from a short simulated cluster (its network packs and
unpacks real messages), records and a snapshot come from a real store, and
the configuration from deploy/swarmnode.toml. Seeds only start the fuzzer
off in the right shapes; `run.py` minimises the corpus it grows from them.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import lmdb

from swarmnode.api.framing import encode_request
from swarmnode.config import Config
from swarmnode.sim import network as simnet
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.storage import layout as L
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Delete, Incr, Put, SAdd
from swarmnode.transport.envelope import seal_envelope
from swarmnode.transport.framing import encode_hello
from swarmnode.transport.keyring import Keyring

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def save(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def datagrams() -> list[bytes]:
    seen: dict[str, bytes] = {}
    real = simnet.unpack_datagram

    def capture(payload: bytes):  # type: ignore[no-untyped-def]
        msgs = real(payload)
        kinds = ",".join(sorted({m["t"] for m in msgs}))
        if kinds not in seen and len(payload) < 1400:
            seen[kinds] = payload
        return msgs

    simnet.unpack_datagram = capture
    work = Path(tempfile.mkdtemp())
    try:
        c = Cluster(ClusterConfig(seed=1, nodes=3), Config.for_profile("local"), work)
        c.start()
        c.run_for(3)
        for i, op in enumerate(
            [
                Put("swarm", "k", {"a": [1, 2.5, "x"]}),
                Incr("swarm", "c", 3),
                SAdd("swarm", "s", ["m"]),
            ]
        ):
            c.call(i % 3, lambda node, op=op: node.write(op))
        c.call(0, lambda node: node.write(Delete("swarm", "k")))
        c.run_for(10)
        c.close()
    finally:
        simnet.unpack_datagram = real
        shutil.rmtree(work, ignore_errors=True)
    return list(seen.values())


def store_material() -> tuple[list[bytes], list[bytes], bytes]:
    work = Path(tempfile.mkdtemp())
    try:
        store = Store(work / "d")
        store.apply(
            [
                Put("swarm", "k", {"a": 1}, ttl=60),
                Put("swarm", "long-" + "x" * 500, "v"),
                Incr("swarm", "c", -2),
                SAdd("swarm", "s", ["m1", "m2" * 300]),
                Delete("swarm", "gone"),
            ],
            1_700_000_000_000,
        )
        records, entries = [], []
        with store.env.begin() as txn:
            for name in ("entries", "members", "merkle", "due"):
                for k, v in txn.cursor(db=store.db[name]):
                    records.append(bytes([len(k) % 256]) + bytes(k) + bytes(v))
                    if name == "entries":
                        entries.append(L.unpack_record(bytes(v)).header)
        snap = store.snapshot("seed", work / "snaps")
        store.close()
        env = lmdb.open(str(snap), readonly=True, lock=False, max_dbs=len(L.DB_NAMES) + 1)
        recs = []
        with env.begin() as txn:
            for db, name in enumerate((b"entries", b"members")):
                for k, v in txn.cursor(db=env.open_db(name, txn=txn, create=False)):
                    if len(k) < 256 and len(v) < 65536:
                        recs.append((db, bytes(k), bytes(v)))
        env.close()
        data = b"".join(
            bytes([db, len(k)]) + len(v).to_bytes(2, "big") + k + v for db, k, v in recs
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records, entries, data


def main() -> int:
    for args in ({"ns": "swarm", "key": "k", "value": {"x": [1, None, True]}}, {}):
        save("client_frames", encode_request(7, "put", args) + encode_request(8, "get", args))
    save("client_frames", b"\x00\x00\x00\x03\x93\x01\x02")
    grams = datagrams()
    for g in grams:
        save("gossip_datagram", b"\x02" + g)
        save("envelope", seal_envelope(g, Keyring([bytes(range(32))]), nonce_source=bytes))
    save("stream_frames", len(b"x" * 40).to_bytes(4, "big") + encode_hello(("10.0.0.5", 7117)))
    save("stream_frames", b"\x00\x00\x10\x00" + encode_hello(("::1", 1)))
    records, entries, snapshot = store_material()
    for r in records:
        save("stored_records", r)
    for e in entries:
        save("entry_codec", e)
    save("snapshot_file", snapshot)
    save("config_file", (HERE.parent / "deploy" / "swarmnode.toml").read_bytes())
    save("config_file", b'profile = "local"\n[store]\ntombstone_grace = 10.0\n')
    print(
        f"{len(grams)} datagrams, {len(records)} records, {len(entries)} entries, "
        f"snapshot records {len(snapshot)} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
