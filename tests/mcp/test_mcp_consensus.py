"""memory_cas, memory_claim and linearizable memory_retrieve through a real `swarmnode mcp`
process against a real node (a lone node is its own consensus group)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from mcp_harness import McpSession
from nodeproc import NodeProcess


@pytest.fixture(scope="module")
def mcp(shared_node: NodeProcess) -> Iterator[McpSession]:
    assert shared_node.socket is not None
    with McpSession(shared_node.socket) as session:
        _wait_for_the_group(session)
        yield session


def _wait_for_the_group(mcp: McpSession, timeout: float = 60.0) -> None:
    """Until the node's consensus group has formed, cas answers unavailable."""
    deadline = time.monotonic() + timeout
    while True:
        result = mcp.call("memory_cas", {"key": "probe", "value": 1})
        if not result.is_error:
            return
        code = result.structured_content["error"]["code"]
        assert code == "unavailable", result.content[0].text
        assert time.monotonic() < deadline, "the consensus group never formed"
        time.sleep(0.1)


def test_cas_swaps_only_from_the_expected_value_and_retrieve_reads_it_linearizably(
    mcp: McpSession,
) -> None:
    first = mcp.ok("memory_cas", {"key": "plan", "value": {"step": 1}})
    assert first["ok"] is True and first["value"] == {"step": 1}
    again = mcp.ok("memory_cas", {"key": "plan", "value": {"step": 9}})
    assert again["ok"] is False and again["value"] == {"step": 1}
    stale = mcp.ok("memory_cas", {"key": "plan", "value": {"step": 3}, "expected": {"step": 2}})
    assert stale["ok"] is False
    swapped = mcp.ok("memory_cas", {"key": "plan", "value": {"step": 2}, "expected": {"step": 1}})
    assert swapped["ok"] is True
    read = mcp.ok(
        "memory_retrieve", {"namespace": "decisions", "key": "plan", "linearizable": True}
    )
    assert read["value"] == {"step": 2}


def test_a_claimed_task_has_one_holder_whose_token_renews_and_releases_it(
    mcp: McpSession,
) -> None:
    a: dict[str, Any] = mcp.ok("memory_claim", {"key": "task:7", "owner": "a", "lease": 600})
    assert a["action"] == "claim" and a["granted"] is True and a["token"] > 0
    b = mcp.ok("memory_claim", {"key": "task:7", "owner": "b", "lease": 600})
    assert b["granted"] is False and b["owner"] == "a" and b["token"] == a["token"]
    renewed = mcp.ok(
        "memory_claim",
        {"action": "renew", "key": "task:7", "owner": "a", "token": a["token"], "lease": 600},
    )
    assert renewed["renewed"] is True
    released = mcp.ok(
        "memory_claim", {"action": "release", "key": "task:7", "owner": "a", "token": a["token"]}
    )
    assert released["released"] is True
    b2 = mcp.ok("memory_claim", {"key": "task:7", "owner": "b", "lease": 600})
    assert b2["granted"] is True and b2["token"] > a["token"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"action": "renew", "key": "t", "owner": "a", "lease": 5}, "missing token"),
        ({"action": "release", "key": "t", "owner": "a", "token": 1, "lease": 5}, "lease does not"),
        ({"key": "t", "owner": "a"}, "missing lease"),
    ],
)
def test_claim_arguments_that_do_not_fit_the_action_are_refused_by_name(
    mcp: McpSession, arguments: dict[str, Any], expected: str
) -> None:
    code, message = mcp.error("memory_claim", arguments)
    assert code == "bad_request" and expected in message


def test_cas_outside_a_consensus_namespace_is_refused(mcp: McpSession) -> None:
    code, _ = mcp.error("memory_cas", {"namespace": "default", "key": "k", "value": 1})
    assert code in ("bad_request", "not_found")
