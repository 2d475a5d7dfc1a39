"""Every memory tool through a real `swarmnode mcp` process against a real node.

One node and one MCP session serve the module; each test uses namespaces and
keys of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp_harness import McpSession
from nodeproc import NodeProcess

from swarmnode.errors import BadRequest

TOOL_NAMES = {
    "memory_usage",
    "memory_store",
    "memory_retrieve",
    "memory_list",
    "memory_delete",
    "memory_search",
    "memory_stats",
    "memory_vector_search",
    "memory_sync",
    "memory_compress",
    "memory_persist",
    "memory_namespace",
    "memory_analytics",
    "memory_cas",
    "memory_claim",
}


@pytest.fixture(scope="module")
def mcp(shared_node: NodeProcess) -> Iterator[McpSession]:
    assert shared_node.socket is not None
    with McpSession(shared_node.socket) as session:
        yield session


def test_lists_every_tool_with_a_description_and_a_schema_agents_can_follow(
    mcp: McpSession,
) -> None:
    tools = {t.name: t for t in mcp.list_tools()}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        schema = tool.input_schema
        assert tool.description and len(tool.description) > 40, tool.name
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", [])) <= set(schema["properties"])
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    usage = tools["memory_usage"].input_schema
    assert usage["properties"]["action"]["enum"] == [
        "store",
        "retrieve",
        "list",
        "delete",
        "search",
    ]
    assert tools["memory_search"].input_schema["properties"]["mode"]["enum"] == [
        "auto",
        "glob",
        "substring",
        "semantic",
    ]
    assert tools["memory_retrieve"].annotations.read_only_hint is True
    assert tools["memory_delete"].annotations.destructive_hint is True


def test_store_and_retrieve_reach_the_same_entry_under_old_and_new_names(
    mcp: McpSession,
) -> None:
    value = {"state": "open", "owner": "agent-7", "steps": [1, 2, 3]}
    stored = mcp.ok(
        "memory_usage",
        {"action": "store", "namespace": "t-alias", "key": "task:1", "value": value, "ttl": 600},
    )
    assert stored["action"] == "store" and stored["stored"] is True
    assert stored["expires_at"] is not None
    got = mcp.ok("memory_retrieve", {"namespace": "t-alias", "key": "task:1"})
    assert got["value"] == value
    again = mcp.ok("memory_usage", {"action": "retrieve", "namespace": "t-alias", "key": "task:1"})
    assert again == {"action": "retrieve", **got}
    mcp.ok("memory_store", {"namespace": "t-alias", "key": "task:1", "value": "done"})
    assert mcp.ok("memory_retrieve", {"namespace": "t-alias", "key": "task:1"})["value"] == "done"


def test_the_store_is_the_one_the_cli_and_clients_see(
    mcp: McpSession, shared_node: NodeProcess
) -> None:
    mcp.ok(
        "memory_store",
        {"namespace": "t-shared", "key": "k", "value": "v", "metadata": {"tags": ["x"]}},
    )
    with shared_node.client() as c:
        entry = c.get("t-shared", "k")
        assert (entry["value"], entry["meta"]) == ("v", {"tags": ["x"]})
        c.put("t-shared", "from-client", 42)
    assert mcp.ok("memory_retrieve", {"namespace": "t-shared", "key": "from-client"})["value"] == 42


def test_default_namespace_is_used_when_none_is_given(mcp: McpSession) -> None:
    mcp.ok("memory_store", {"key": "t-default-key", "value": 1})
    got = mcp.ok("memory_retrieve", {"key": "t-default-key", "namespace": "default"})
    assert got["ns"] == "default" and got["value"] == 1


def test_null_is_a_value_that_can_be_stored(mcp: McpSession) -> None:
    mcp.ok("memory_usage", {"action": "store", "key": "t-null", "value": None, "ttl": None})
    got = mcp.ok("memory_retrieve", {"key": "t-null"})
    assert got["value"] is None and got["expires_at"] is None


def test_list_pages_through_a_namespace_with_values(mcp: McpSession) -> None:
    for i in range(5):
        mcp.ok("memory_store", {"namespace": "t-list", "key": f"item:{i}", "value": i})
    mcp.ok("memory_store", {"namespace": "t-list", "key": "other", "value": "x"})
    first = mcp.ok("memory_list", {"namespace": "t-list", "prefix": "item:", "limit": 3})
    assert [i["key"] for i in first["items"]] == ["item:0", "item:1", "item:2"]
    assert [i["value"] for i in first["items"]] == [0, 1, 2]
    assert first["cursor"]
    rest = mcp.ok(
        "memory_usage",
        {"action": "list", "namespace": "t-list", "prefix": "item:", "cursor": first["cursor"]},
    )
    assert [i["key"] for i in rest["items"]] == ["item:3", "item:4"]
    assert rest["cursor"] is None
    globbed = mcp.ok("memory_list", {"namespace": "t-list", "pattern": "o*", "values": False})
    assert [i["key"] for i in globbed["items"]] == ["other"]
    assert "value" not in globbed["items"][0]


def test_delete_says_whether_anything_was_deleted(mcp: McpSession) -> None:
    mcp.ok("memory_store", {"namespace": "t-del", "key": "k", "value": 1})
    assert mcp.ok("memory_delete", {"namespace": "t-del", "key": "k"})["deleted"] is True
    again = mcp.ok("memory_usage", {"action": "delete", "namespace": "t-del", "key": "k"})
    assert again["deleted"] is False
    code, message = mcp.error("memory_retrieve", {"namespace": "t-del", "key": "k"})
    assert code == "not_found" and "'k'" in message


def test_search_auto_globs_keys_with_wildcards_and_matches_keywords_otherwise(
    mcp: McpSession,
) -> None:
    mcp.ok("memory_store", {"namespace": "t-search", "key": "auth:login", "value": "JWT tokens"})
    mcp.ok("memory_store", {"namespace": "t-search", "key": "auth:logout", "value": "clear"})
    mcp.ok("memory_store", {"namespace": "t-search", "key": "db:schema", "value": "uses jwt"})

    globbed = mcp.ok("memory_search", {"pattern": "auth:*", "namespace": "t-search"})
    assert globbed["searched"] == ["glob over keys"]
    assert {(i["key"], i["match"]) for i in globbed["items"]} == {
        ("auth:login", "glob"),
        ("auth:logout", "glob"),
    }

    words = mcp.ok("memory_search", {"query": "jwt", "namespace": "t-search"})
    assert words["searched"] == ["substring in keys and values"]
    assert {(i["key"], i["match"]) for i in words["items"]} == {
        ("auth:login", "value"),
        ("db:schema", "value"),
    }
    by_key = mcp.ok("memory_usage", {"action": "search", "pattern": "logout"})
    assert by_key["namespace"] == "all"
    assert [(i["ns"], i["key"], i["match"]) for i in by_key["items"]] == [
        ("t-search", "auth:logout", "key")
    ]


def test_search_explicit_modes_and_limit(mcp: McpSession) -> None:
    for i in range(4):
        mcp.ok("memory_store", {"namespace": "t-modes", "key": f"note{i}", "value": "a*b"})
    literal = mcp.ok(
        "memory_search", {"pattern": "a*b", "namespace": "t-modes", "mode": "substring"}
    )
    assert literal["count"] == 4 and {i["match"] for i in literal["items"]} == {"value"}
    limited = mcp.ok("memory_search", {"pattern": "note*", "namespace": "t-modes", "limit": 2})
    assert limited["count"] == 2 and limited["truncated"] is True
    exact = mcp.ok("memory_search", {"pattern": "note1", "namespace": "t-modes", "mode": "glob"})
    assert [i["key"] for i in exact["items"]] == ["note1"]


def test_searching_a_namespace_that_does_not_exist_is_an_error_not_an_empty_result(
    mcp: McpSession,
) -> None:
    code, message = mcp.error("memory_search", {"pattern": "x", "namespace": "t-typo-space"})
    assert code == "not_found"
    assert "'t-typo-space' does not exist" in message and "tasks" in message
    code, message = mcp.error("memory_list", {"namespace": "t-typo-space"})
    assert code == "not_found" and "does not exist" in message
    code, message = mcp.error("memory_retrieve", {"namespace": "t-typo-space", "key": "k"})
    assert code == "not_found" and "does not exist" in message
    nothing = mcp.ok("memory_search", {"pattern": "no-such-thing-anywhere"})
    assert nothing["items"] == [] and nothing["searched"]


def test_semantic_search_without_an_embedder_says_how_to_get_one(mcp: McpSession) -> None:
    mcp.ok("memory_store", {"namespace": "t-plain", "key": "k", "value": "text"})
    code, message = mcp.error(
        "memory_search", {"pattern": "text", "namespace": "t-plain", "mode": "semantic"}
    )
    assert code == "bad_request" and "embedder" in message and "memory_namespace" in message


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("memory_store", {"key": "k"}, "missing required argument 'value'"),
        ("memory_store", {"key": 7, "value": 1}, "argument 'key' must be a string"),
        ("memory_store", {"key": "k", "value": 1, "ttl": -1}, "'ttl' must be at least 0"),
        ("memory_store", {"key": "k", "value": 1, "colour": "red"}, "unknown argument(s) colour"),
        ("memory_usage", {"key": "k"}, "missing required argument 'action'"),
        ("memory_usage", {"action": "fly"}, "'action' must be one of store, retrieve"),
        (
            "memory_usage",
            {"action": "retrieve", "key": "k", "value": 1},
            "memory_usage action=retrieve: unknown argument(s) value",
        ),
        ("memory_search", {}, "give a pattern (or query)"),
        ("memory_search", {"pattern": "a", "query": "b"}, "pattern or query, not both"),
        ("memory_search", {"pattern": "a", "mode": "fuzzy"}, "'mode' must be one of auto"),
        ("memory_search", {"pattern": "a", "limit": 0}, "'limit' must be at least 1"),
        ("memory_search", {"pattern": "a", "limit": True}, "'limit' must be an integer"),
        ("memory_vector_search", {"namespace": "n"}, "exactly one of vector, text or key"),
        (
            "memory_vector_search",
            {"namespace": "n", "text": "a", "key": "k"},
            "exactly one of vector, text or key",
        ),
        ("memory_vector_search", {"namespace": "n", "vector": ["x"]}, "item 0 must be a number"),
        ("memory_namespace", {"action": "delete"}, "action delete needs a namespace"),
        ("memory_namespace", {"action": "stats", "ttl": 5}, "ttl apply to action init only"),
        ("memory_persist", {"sessionId": "s", "namespace": "n"}, "restore only"),
        ("memory_analytics", {"timeframe": "2w"}, "'timeframe' must be one of 5m, 1h"),
        ("memory_store", {"namespace": "bad name!", "key": "k", "value": 1}, "invalid namespace"),
        ("memory_teleport", {}, "unknown tool 'memory_teleport'"),
    ],
)
def test_bad_arguments_come_back_as_tool_errors_that_name_the_problem(
    mcp: McpSession, tool: str, arguments: dict[str, object], expected: str
) -> None:
    code, message = mcp.error(tool, arguments)
    assert code in ("bad_request", "not_found")
    assert expected in message


def test_namespaces_are_created_inspected_and_deleted(mcp: McpSession) -> None:
    made = mcp.ok(
        "memory_namespace",
        {"action": "init", "namespace": "t-ns", "ttl": 120, "policy": "mv", "dim": 3},
    )
    assert (made["ttl"], made["policy"], made["dim"]) == (120, "mv", 3)
    mcp.ok("memory_store", {"namespace": "t-ns", "key": "a", "value": 1})
    one = mcp.ok("memory_namespace", {"action": "stats", "namespace": "t-ns"})
    assert one["namespace"]["entries"] == 1 and one["node"]["node_id"]
    everything = mcp.ok("memory_stats")
    assert "t-ns" in {n["name"] for n in everything["namespaces"]}
    assert mcp.ok("memory_stats", {"namespace": "t-ns"})["namespace"] == one["namespace"]
    assert mcp.ok("memory_namespace", {"action": "delete", "namespace": "t-ns"})["deleted"]
    code, _ = mcp.error("memory_retrieve", {"namespace": "t-ns", "key": "a"})
    assert code == "not_found"
    code, message = mcp.error("memory_namespace", {"action": "delete", "namespace": "t-never"})
    assert code == "not_found" and "does not exist" in message
    code, message = mcp.error(
        "memory_namespace", {"action": "init", "namespace": "t-x", "ttl": 1e12}
    )
    assert code == "bad_request" and "ttl" in message


def test_persist_then_restore_brings_back_what_changed(mcp: McpSession) -> None:
    mcp.ok("memory_store", {"namespace": "t-snap", "key": "k", "value": "before"})
    snap = mcp.ok("memory_persist", {"sessionId": "t-session-1"})
    assert snap["action"] == "persist" and snap["bytes"] > 0
    mcp.ok("memory_store", {"namespace": "t-snap", "key": "k", "value": "after"})
    restored = mcp.ok(
        "memory_persist", {"sessionId": "t-session-1", "action": "restore", "namespace": "t-snap"}
    )
    assert restored["restored"] == 1 and restored["failed"] == 0
    assert mcp.ok("memory_retrieve", {"namespace": "t-snap", "key": "k"})["value"] == "before"
    code, message = mcp.error("memory_persist", {"sessionId": "t-none", "action": "restore"})
    assert code == "not_found" and "t-none" in message


def test_compress_drops_expired_entries_and_reports_bytes(mcp: McpSession) -> None:
    report = mcp.ok("memory_compress")
    assert report["disk_bytes_before"] > 0 and report["disk_bytes_after"] > 0
    assert "entries_removed" in report
    code, _ = mcp.error("memory_compress", {"namespace": "t-no-such-ns"})
    assert code == "not_found"


def test_sync_on_a_lone_node_reports_no_peers_and_rejects_unknown_targets(
    mcp: McpSession,
) -> None:
    report = mcp.ok("memory_sync")
    assert report["target"] == "all" and report["peers"] == 0
    assert report["keys_repaired"] == 0 and report["failures"] == []
    code, message = mcp.error("memory_sync", {"target": "no-such-node"})
    assert code == "not_found" and "no-such-node" in message


def test_vector_search_errors_from_the_node_are_tool_errors_and_the_server_carries_on(
    mcp: McpSession,
) -> None:
    mcp.ok("memory_namespace", {"action": "init", "namespace": "t-vec-err", "dim": 2})
    code, message = mcp.error(
        "memory_vector_search", {"namespace": "t-vec-err", "text": "needs an embedder"}
    )
    assert code == "bad_request" and message
    assert mcp.ok("memory_stats")["node"]["node_id"]


def _has_vsearch(node: NodeProcess) -> bool:
    with node.client() as c:
        try:
            c.call("vsearch", ns="default", vector=[0.0], k=1)
        except BadRequest as exc:
            return "unknown operation 'vsearch'" not in exc.message
    return True


def test_vector_search_finds_the_nearest_entries(mcp: McpSession, shared_node: NodeProcess) -> None:
    if not _has_vsearch(shared_node):
        pytest.skip("this node has no vsearch operation yet (issue 6)")
    mcp.ok("memory_namespace", {"action": "init", "namespace": "t-vec", "dim": 2, "metric": "l2"})
    for key, vec in (("east", [1.0, 0.0]), ("north", [0.0, 1.0]), ("far", [9.0, 9.0])):
        mcp.ok("memory_store", {"namespace": "t-vec", "key": key, "value": key, "vector": vec})
    found = mcp.ok("memory_vector_search", {"namespace": "t-vec", "vector": [0.9, 0.1], "k": 2})
    assert [i["key"] for i in found["items"]] == ["east", "north"]
    assert found["items"][0]["value"] == "east"
    near = mcp.ok("memory_vector_search", {"namespace": "t-vec", "key": "north", "k": 2})
    assert [i["key"] for i in near["items"]] == ["north", "east"]


def test_analytics_reports_operations_hits_and_latency(mcp: McpSession) -> None:
    mcp.ok("memory_store", {"namespace": "t-stats", "key": "k", "value": 1})
    mcp.ok("memory_retrieve", {"namespace": "t-stats", "key": "k"})
    mcp.error("memory_retrieve", {"namespace": "t-stats", "key": "missing"})
    report = mcp.ok("memory_analytics", {"timeframe": "5m"})
    assert report["timeframe"] == "5m"
    ops = report["operations"]["by_namespace"]["t-stats"]
    assert ops["put"] == 1 and ops["get"] == 2
    assert report["reads"]["by_namespace"]["t-stats"] == {
        "hits": 1,
        "misses": 1,
        "hit_ratio": 0.5,
    }
    assert report["errors"]["by_code"]["not_found"] >= 1
    latency = report["latency_ms"]["by_kind"]["get"]
    assert latency["count"] >= 2 and 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert report["replication"]["peers_alive"] == 0
    assert report["replication"]["lag_ms"] == {"count": 0}
    assert mcp.ok("memory_analytics")["timeframe"] == "1h"


def test_auto_search_matches_by_meaning_and_by_keyword_where_there_is_an_embedder(
    mcp: McpSession, shared_node: NodeProcess
) -> None:
    if not _has_vsearch(shared_node):
        pytest.skip("this node has no vsearch operation yet (issue 6)")
    mcp.ok(
        "memory_namespace",
        {"action": "init", "namespace": "t-sem", "embedder": "all-MiniLM-L6-v2", "dim": 384},
    )
    notes = {
        "pets": "The cat slept on the warm windowsill all afternoon.",
        "finance": "Quarterly revenue grew by ten percent.",
        "ops": "The kubernetes pod was killed for running out of memory.",
    }
    for key, text in notes.items():
        mcp.ok("memory_store", {"namespace": "t-sem", "key": key, "value": text})
    by_meaning = mcp.ok("memory_search", {"query": "kitten napping", "namespace": "t-sem"})
    assert by_meaning["searched"] == ["semantic in t-sem", "substring in keys and values"]
    assert by_meaning["items"][0]["key"] == "pets"
    assert by_meaning["items"][0]["match"] == "semantic" and "score" in by_meaning["items"][0]
    both = mcp.ok("memory_search", {"query": "revenue", "namespace": "t-sem", "limit": 1})
    assert [(i["key"], i["match"]) for i in both["items"]] == [("finance", "semantic+value")]
    only = mcp.ok(
        "memory_search", {"query": "memory trouble", "namespace": "t-sem", "mode": "semantic"}
    )
    assert only["searched"] == ["semantic in t-sem"] and only["items"][0]["key"] == "ops"
