"""Every client write the store applies: what it does, and every way it is refused."""

from __future__ import annotations

import pytest

from swarmnode.crdt.hlc import wall_ms
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import DefineNs, Delete, Incr, Put, SAdd, SRem
from swarmnode.storage.views import entry_view

from .support import T0, fails, ok, sweep_all, view

# --- put and get ---------------------------------------------------------------


def test_put_stores_value_and_meta_and_a_later_put_replaces_them(store: Store) -> None:
    first = ok(store, Put("default", "k", {"b": 1, "a": [1, 2.5, None, b"\x00"]}, meta={"z": 1}))
    got = view(store, "default", "k", T0)
    assert got is not None
    assert got["value"] == {"a": [1, 2.5, None, b"\x00"], "b": 1}
    assert list(got["value"]) == ["a", "b"]  # canonical: map keys sorted
    assert got["meta"] == {"z": 1}
    assert got["ts"] == first["ts"] and wall_ms(first["ts"]) == T0
    assert got["type"] == "register"

    second = ok(store, Put("default", "k", "new"), T0 + 1)
    assert second["ts"] > first["ts"]
    got = view(store, "default", "k", T0 + 1)
    assert got is not None and got["value"] == "new" and got["meta"] is None


def test_timestamps_increase_even_when_the_physical_clock_does_not(store: Store) -> None:
    stamps = [ok(store, Put("default", f"k{i}", i), T0)["ts"] for i in range(5)]
    stamps.append(ok(store, Put("default", "late", 0), T0 - 5000)["ts"])
    assert stamps == sorted(set(stamps))


def test_if_absent_writes_only_when_the_key_is_not_live(store: Store) -> None:
    ok(store, Put("default", "k", 1, if_absent=True))
    err = fails(store, Put("default", "k", 2, if_absent=True), T0 + 1)
    assert err.code == "conflict"
    assert view(store, "default", "k", T0 + 1)["value"] == 1

    ok(store, Delete("default", "k"), T0 + 2)
    ok(store, Put("default", "k", 3, if_absent=True), T0 + 3)
    assert view(store, "default", "k", T0 + 3)["value"] == 3

    ok(store, Put("default", "brief", 1, ttl=1), T0 + 4)
    ok(store, Put("default", "brief", 2, if_absent=True), T0 + 4 + 1000)


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {"deep": {"er": object()}}, {1, 2}, 1 << 64, -(1 << 63) - 1],
    ids=["int-map-key", "object", "python-set", "int-too-big", "int-too-small"],
)
def test_values_msgpack_cannot_carry_canonically_are_bad_requests(store: Store, value) -> None:
    assert fails(store, Put("default", "k", value)).code == "bad_request"
    assert store.get("default", "k") is None


def test_values_nested_deeper_than_the_limit_are_bad_requests(store: Store) -> None:
    deep: object = "bottom"
    for _ in range(40):
        deep = [deep]
    assert fails(store, Put("default", "k", deep)).code == "bad_request"


def test_meta_must_be_a_map(store: Store) -> None:
    assert fails(store, Put("default", "k", 1, meta=["not", "a", "map"])).code == "bad_request"


@pytest.mark.parametrize(
    ("key", "code"),
    [("", "bad_request"), ("a\x00b", "bad_request"), (5, "bad_request"), (None, "bad_request")],
)
def test_malformed_keys_are_refused(store: Store, key, code: str) -> None:
    assert fails(store, Put("default", key, 1)).code == code


@pytest.mark.parametrize("size", [500, 1024])
def test_keys_up_to_the_advertised_limit_are_stored(store: Store, size: int) -> None:
    ok(store, Put("default", "k" * size, 1))
    ok(store, Incr("default", "c" * size))
    ok(store, SAdd("default", "s" * size, ["m"]))
    assert view(store, "default", "k" * size, T0)["value"] == 1
    assert view(store, "default", "c" * size, T0)["value"] == 1


def test_set_members_up_to_the_advertised_limit_are_stored(store: Store) -> None:
    ok(store, SAdd("default", "s", ["m" * 1024, "short"]))
    assert view(store, "default", "s", T0)["value"] == ["m" * 1024, "short"]
    ok(store, SRem("default", "s", ["m" * 1024]))
    assert view(store, "default", "s", T0)["value"] == ["short"]


def test_long_keys_sharing_a_long_prefix_stay_distinct_in_scans_and_anti_entropy(
    store: Store,
) -> None:
    stem = "p" * 450
    keys = [stem + suffix for suffix in ("a", "b", "c")]
    for i, key in enumerate(keys):
        ok(store, Put("default", key, i))
    with store.read() as txn:
        scanned = [k for k, _ in store.scan("default", txn, prefix=stem + "b")]
        every = sorted(k for k, _ in store.scan("default", txn))
    assert scanned == [stem + "b"]
    assert every == sorted(keys)
    listed = store.leaf_entries("default", 0, (1 << 16) - 1)
    assert sorted(k for k, _ in listed) == sorted(keys)
    assert sorted(k for k, _ in store.digests("default")) == sorted(keys)
    states = dict(store.states("default", keys))
    assert set(states) == set(keys)


def test_a_long_key_with_a_ttl_is_swept_and_its_change_feed_names_it(store: Store) -> None:
    key = "t" * 700
    ok(store, Put("default", key, "v", ttl=1))
    assert view(store, "default", key, T0 + 2000) is None
    sweep_all(store, T0 + 2000)
    feed = store.changes_since(0)
    assert ("default", key) in {(ns, k) for _, ns, k in feed}


def test_set_members_must_not_contain_nul(store: Store) -> None:
    assert fails(store, SAdd("default", "s", ["a\x00b"])).code == "bad_request"


def test_keys_are_limited_in_utf8_bytes_not_characters(store: Store) -> None:
    ok(store, Put("default", "k" * 400, 1))
    assert fails(store, Put("default", "k" * 1025, 1)).code == "too_large"
    assert fails(store, Put("default", "é" * 513, 1)).code == "too_large"  # 1026 bytes
    assert fails(store, Incr("default", "k" * 1025)).code == "too_large"
    assert fails(store, SAdd("default", "k" * 1025, ["m"])).code == "too_large"


def test_values_are_limited_to_one_mebibyte_packed(store: Store) -> None:
    limit = store.config.max_value_bytes
    assert limit == 1 << 20
    ok(store, Put("default", "fits", b"x" * (limit - 5)))  # bin32 header: 5 bytes
    assert fails(store, Put("default", "big", b"x" * (limit - 4))).code == "too_large"
    assert fails(store, Put("default", "bigmeta", 1, meta={"m": "x" * limit})).code == "too_large"
    assert store.get("default", "big") is None


@pytest.mark.parametrize("ns", ["", "has space", "_ns", "-lead", "x" * 65, 7, None])
def test_invalid_and_reserved_namespace_names_are_refused(store: Store, ns) -> None:
    assert fails(store, Put(ns, "k", 1)).code == "bad_request"
    assert fails(store, Incr(ns, "k")).code == "bad_request"
    assert fails(store, DefineNs(ns, {})).code == "bad_request"


# --- vectors -------------------------------------------------------------------


def test_vectors_need_a_namespace_dimension_and_must_match_it(store: Store) -> None:
    assert fails(store, Put("default", "k", 1, vector=[1.0, 2.0])).code == "bad_request"
    ok(store, DefineNs("emb", {"dim": 3}))
    ok(store, Put("emb", "k", 1, vector=[1, 2, 3]))
    entry = store.get("emb", "k")
    assert entry is not None and entry.reg is not None and len(entry.reg.vector) == 12
    for bad in ([1.0, 2.0], [1.0, 2.0, float("nan")], [1.0, float("inf"), 0.0], [], ["a", 1, 2]):
        assert fails(store, Put("emb", "bad", 1, vector=bad)).code == "bad_request", bad
    assert fails(store, Put("emb", "bad", 1, vector=[1e40, 0, 0])).code == "bad_request"
    assert store.get("emb", "bad") is None


def test_a_namespace_dimension_cannot_change_while_it_exists(store: Store) -> None:
    ok(store, DefineNs("emb", {"dim": 3}))
    assert fails(store, DefineNs("emb", {"dim": 4})).code == "conflict"
    ok(store, DefineNs("emb", {"ttl": 60}))  # other settings may change
    assert store.namespace("emb").dim == 3 and store.namespace("emb").ttl == 60


# --- kinds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("create", "other"),
    [
        (Put("default", "k", 1), Incr("default", "k")),
        (Put("default", "k", 1), SAdd("default", "k", ["m"])),
        (Put("default", "k", 1), SRem("default", "k", ["m"])),
        (Incr("default", "k"), Put("default", "k", 1)),
        (Incr("default", "k"), SAdd("default", "k", ["m"])),
        (SAdd("default", "k", ["m"]), Put("default", "k", 1)),
        (SAdd("default", "k", ["m"]), Incr("default", "k")),
    ],
    ids=lambda op: type(op).__name__,
)
def test_an_operation_of_another_kind_on_a_live_key_is_wrong_type(store: Store, create, other):
    ok(store, create)
    before = store.get("default", "k")
    err = fails(store, other, T0 + 1)
    assert err.code == "wrong_type"
    assert store.get("default", "k") == before


def test_a_key_whose_entry_expired_or_was_deleted_takes_any_kind(store: Store) -> None:
    ok(store, Put("default", "k", 1, ttl=1))
    assert ok(store, Incr("default", "k", 5), T0 + 1000)["value"] == 5
    ok(store, Delete("default", "k"), T0 + 1001)
    assert ok(store, SAdd("default", "k", ["m"]), T0 + 1002)["added"] == 1
    assert view(store, "default", "k", T0 + 1002)["type"] == "set"


# --- delete --------------------------------------------------------------------


@pytest.mark.parametrize(
    "create",
    [Put("default", "k", 1), Incr("default", "k", 3), SAdd("default", "k", ["a", "b"])],
    ids=["register", "counter", "set"],
)
def test_delete_hides_any_kind_and_reports_whether_there_was_something(store, create) -> None:
    ok(store, create)
    assert ok(store, Delete("default", "k"), T0 + 1) == {"deleted": True}
    assert view(store, "default", "k", T0 + 1) is None
    assert ok(store, Delete("default", "k"), T0 + 2) == {"deleted": False}
    assert ok(store, Delete("default", "never"), T0 + 2) == {"deleted": False}


def test_a_counter_or_set_rewritten_after_delete_starts_from_nothing(store: Store) -> None:
    ok(store, Incr("default", "c", 10))
    ok(store, SAdd("default", "s", ["old"]))
    ok(store, Delete("default", "c"), T0 + 1)
    ok(store, Delete("default", "s"), T0 + 1)
    assert ok(store, Incr("default", "c", 1), T0 + 2)["value"] == 1
    ok(store, SAdd("default", "s", ["new"]), T0 + 2)
    assert view(store, "default", "s", T0 + 2)["value"] == ["new"]


# --- counters ------------------------------------------------------------------


def test_incr_counts_up_and_down_from_zero(store: Store) -> None:
    assert ok(store, Incr("default", "c"))["value"] == 1
    assert ok(store, Incr("default", "c", 41))["value"] == 42
    assert ok(store, Incr("default", "c", -50))["value"] == -8
    assert view(store, "default", "c", T0)["value"] == -8


@pytest.mark.parametrize("by", [True, 1.5, "1", None, 1 << 62, -(1 << 62)])
def test_incr_by_must_be_a_moderate_integer(store: Store, by) -> None:
    err = fails(store, Incr("default", "c", by))
    assert err.code == "bad_request"
    # The message says what is wrong: the type, or (for a big integer) the range.
    assert ("between" in err.message) == (type(by) is int)
    assert store.get("default", "c") is None


# --- sets ----------------------------------------------------------------------


def test_sadd_and_srem_report_what_they_changed(store: Store) -> None:
    assert ok(store, SAdd("default", "s", ["b", "a", "b"]))["added"] == 2
    assert ok(store, SAdd("default", "s", ["a", "c"]))["added"] == 1
    assert ok(store, SAdd("default", "s", "single"))["added"] == 1
    assert view(store, "default", "s", T0)["value"] == ["a", "b", "c", "single"]
    assert ok(store, SRem("default", "s", ["a", "zz"]))["removed"] == 1
    assert ok(store, SRem("default", "s", ["zz"]))["removed"] == 0
    assert ok(store, SRem("default", "nothing", ["a"]))["removed"] == 0
    assert view(store, "default", "s", T0)["value"] == ["b", "c", "single"]


def test_removing_every_member_leaves_no_visible_set(store: Store) -> None:
    ok(store, SAdd("default", "s", ["a"]))
    ok(store, SRem("default", "s", ["a"]))
    assert view(store, "default", "s", T0) is None
    ok(store, Put("default", "s", "now a register"))


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ([], "bad_request"),
        ([1], "bad_request"),
        (["ok", None], "bad_request"),
        ({"a": 1}, "bad_request"),
        (["m"] * 10_001, "too_large"),
        (["x" * 1025], "too_large"),
    ],
    ids=["empty", "int", "none", "map", "too-many", "member-too-long"],
)
def test_bad_member_lists_are_refused(store: Store, members, code: str) -> None:
    assert fails(store, SAdd("default", "s", members)).code == code
    assert fails(store, SRem("default", "s", members)).code == code
    assert store.get("default", "s") is None


# --- namespaces ----------------------------------------------------------------


def test_builtin_namespaces_have_their_documented_ttls_and_policies(store: Store) -> None:
    hour = 3600.0
    expected = {
        "swarm": 24 * hour,
        "agents": 1 * hour,
        "tasks": 4 * hour,
        "patterns": 7 * 24 * hour,
        "decisions": 30 * 24 * hour,
        "notifications": 300.0,
    }
    for name, ttl in expected.items():
        definition = store.namespace(name)
        assert definition.builtin and definition.ttl == ttl, name
        written = ok(store, Put(name, "k", 1))
        assert written["expires_at"] == wall_ms(written["ts"]) + int(ttl * 1000), name
    assert store.namespace("decisions").policy == "consensus"
    assert set(expected) <= set(store.namespace_names())


def test_ns_init_sets_policy_ttl_and_vectors_and_keeps_what_it_does_not_name(store) -> None:
    got = ok(store, DefineNs("team", {"ttl": 60, "policy": "mv", "dim": 8, "metric": "l2"}))
    assert got["ttl"] == 60 and got["policy"] == "mv" and got["dim"] == 8
    assert got["metric"] == "l2" and got["builtin"] is False
    ok(store, DefineNs("team", {"ttl": 120}))
    d = store.namespace("team")
    assert (d.ttl, d.policy, d.dim, d.metric) == (120, "mv", 8, "l2")
    ok(store, DefineNs("team", {"ttl": 0}))
    assert store.namespace("team").ttl is None
    written = ok(store, Put("team", "k", 1))
    assert written["expires_at"] is None
    assert "team" in store.namespace_names()


@pytest.mark.parametrize(
    "args",
    [
        {"policy": "majority"},
        {"metric": "manhattan"},
        {"dim": 0},
        {"dim": 5000},
        {"dim": "8"},
        {"dim": True},
        {"ttl": -1},
        {"ttl": "1h"},
        {"embedder": ""},
    ],
)
def test_ns_init_refuses_bad_settings(store: Store, args) -> None:
    assert fails(store, DefineNs("team", args)).code == "bad_request"
    assert "team" not in store.namespace_names()


def test_ns_init_can_change_a_builtin_namespace_ttl(store: Store) -> None:
    ok(store, DefineNs("agents", {"ttl": 10}))
    written = ok(store, Put("agents", "a", 1))
    assert written["expires_at"] == T0 + 10_000
    assert store.namespace("agents").builtin


def test_an_increment_that_would_overflow_the_counter_is_refused(store: Store) -> None:
    big = (1 << 62) - 1
    ok(store, Incr("default", "c", big))
    ok(store, Incr("default", "c", big))
    assert fails(store, Incr("default", "c", big)).code == "bad_request"
    assert view(store, "default", "c", T0)["value"] == 2 * big


def test_reads_of_a_hot_entry_come_from_the_read_cache_and_see_every_write(store: Store) -> None:
    def read(key: str, now: int):
        with store.read() as txn:
            entry = store.get_header("default", key, txn)
        return entry, entry_view("default", key, entry, now) if entry is not None else None

    ok(store, Put("default", "hot", "v1"))
    ok(store, Incr("default", "n", 2))
    first, _ = read("hot", T0)
    assert read("hot", T0)[0] is first  # decoded once, then shared
    assert read("n", T0)[1]["value"] == 2
    assert store.read_cache_stats()["hits"] >= 1
    ok(store, Put("default", "hot", "v2"), T0 + 1)
    ok(store, Incr("default", "n", 3), T0 + 1)
    assert read("hot", T0 + 1)[1]["value"] == "v2"
    assert read("n", T0 + 1)[1]["value"] == 5
    ok(store, Delete("default", "hot"), T0 + 2)
    assert read("hot", T0 + 2)[1] is None


def test_the_read_cache_can_be_turned_off(open_store) -> None:
    store = open_store(read_cache_bytes=0)
    ok(store, Put("default", "k", "v"))
    with store.read() as txn:
        assert store.get_header("default", "k", txn).reg.value == "v"
        assert store.get_header("default", "k", txn).reg.value == "v"
    assert store.read_cache_stats()["items"] == 0
