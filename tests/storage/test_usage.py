"""Per-agent usage: every live entry charged to the agent of its latest write, exactly.

The figures the engine keeps must equal a recount from the raw records after
any history of writes, deletes, expiry and collection, and two replicas that
hold the same states must report the same usage whatever order the states
arrived in: that is what lets every node enforce quotas from its own copy.
"""

from __future__ import annotations

import random
from collections import defaultdict

from swarmnode.storage import layout as L
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import DefineNs, Delete, Expire, Incr, Merge, Put, SAdd, SRem
from swarmnode.storage.usage import vectors_of

from .support import SECOND, T0, apply, ok, sweep_all

AGENTS = ("ann", "bob", None)


def recount_usage(store: Store) -> dict[str, tuple[int, int, int]]:
    """(bytes, entries, vectors) per agent, from the raw records of the live entries."""
    usage: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with store.read() as txn:
        with txn.cursor(db=store.db["entries"]) as cur:
            records = [(bytes(k), bytes(v)) for k, v in cur]
        for ekey, raw in records:
            rec = L.unpack_record(raw)
            if not rec.live:
                continue
            ns, key = L.names_of(ekey, rec)
            entry = store.get(ns, key, txn)
            if entry.agent is None:
                continue
            size = len(ekey) + len(raw)
            with txn.cursor(db=store.db["members"]) as mc:
                prefix = L.member_prefix(ekey)
                if mc.set_range(prefix):
                    for mk, mv in mc:
                        if not mk.startswith(prefix):
                            break
                        size += len(mk) + len(mv)
            u = usage[entry.agent]
            u[0] += size
            u[1] += 1
            u[2] += vectors_of(entry)
    return {a: tuple(u) for a, u in usage.items() if any(u)}


def random_history(store: Store, rng: random.Random, steps: int) -> int:
    now = T0
    ok(store, DefineNs("emb", {"dim": 2}), now)
    for _ in range(steps):
        now += rng.randint(0, 3) * SECOND
        agent = rng.choice(AGENTS)
        key = f"k{rng.randint(0, 6)}"
        roll = rng.random()
        if roll < 0.25:
            ns = rng.choice(["default", "emb"])
            vector = [1.0, 2.0] if ns == "emb" and rng.random() < 0.7 else None
            ttl = rng.choice([None, 0, 2, 5])
            op = Put(ns, key, "x" * rng.randint(0, 50), vector=vector, ttl=ttl, agent=agent)
        elif roll < 0.4:
            op = Incr("default", "c" + key, rng.randint(-3, 3), rng.choice([None, 3]), agent=agent)
        elif roll < 0.6:
            members = [f"m{rng.randint(0, 9)}" * rng.randint(1, 30) for _ in range(3)]
            op = SAdd("default", "s" + key, members, rng.choice([None, 4]), agent=agent)
        elif roll < 0.7:
            op = SRem("default", "s" + key, [f"m{rng.randint(0, 9)}"], agent=agent)
        elif roll < 0.8:
            op = Delete(rng.choice(["default", "emb"]), rng.choice([key, "s" + key]), agent=agent)
        elif roll < 0.9:
            op = Expire("default", rng.choice([key, "c" + key, "s" + key]), 2, agent=agent)
        else:
            sweep_all(store, now)
            continue
        apply(store, op, now)
    return now


def test_usage_equals_a_recount_after_any_history(open_store) -> None:
    for seed in range(12):
        store = open_store(f"s{seed}")
        now = random_history(store, random.Random(seed), 300)
        assert dict(store.catalog.usage) == recount_usage(store), f"seed {seed}"
        # Everything expires or is collected in the end: nothing stays charged for it.
        sweep_all(store, now + 10_000 * SECOND)
        sweep_all(store, now + 20_000 * SECOND)
        assert dict(store.catalog.usage) == recount_usage(store), f"seed {seed}, swept"


def test_an_overwrite_moves_the_charge_to_the_new_writer(store) -> None:
    ok(store, Put("default", "k", "a" * 100, agent="ann"))
    assert store.catalog.usage_of("ann")[1] == 1
    ok(store, Put("default", "k", "b", agent="bob"))
    assert store.catalog.usage_of("ann") == (0, 0, 0)
    assert store.catalog.usage_of("bob")[1] == 1
    ok(store, Delete("default", "k", agent="ann"))
    assert store.catalog.usage_of("bob") == (0, 0, 0)
    assert store.catalog.usage_of("ann") == (0, 0, 0)


def test_usage_survives_a_restart(open_store, tmp_path) -> None:
    store = open_store("r")
    random_history(store, random.Random(7), 200)
    before = dict(store.catalog.usage)
    assert before
    store.close()
    again = Store(tmp_path / "r", store.config)
    try:
        assert dict(again.catalog.usage) == before
    finally:
        again.close()


def test_replicas_holding_the_same_states_report_the_same_usage(open_store) -> None:
    a = open_store("a")
    now = random_history(a, random.Random(3), 250)
    # Usage counts what the sweeper counts live: an entry stops being charged when the
    # sweeper sees it expire (at its expiry, within a sweep interval), on every replica.
    sweep_all(a, now)
    with a.read() as txn, txn.cursor(db=a.db["entries"]) as cur:
        keys = [L.names_of(bytes(k), L.unpack_record(bytes(v))) for k, v in cur]
    states = [(ns, key, a.get(ns, key)) for ns, key in keys]
    for order in range(3):
        b = open_store(f"b{order}")
        ok(b, DefineNs("emb", {"dim": 2}), now)
        random.Random(order).shuffle(states)
        for ns, key, entry in states:
            if not ns.startswith("_"):
                ok(b, Merge(ns, key, entry, full=True), now)
        sweep_all(b, now)
        assert dict(b.catalog.usage) == dict(a.catalog.usage), f"order {order}"
