"""The MCP bridge as an agent: `swarmnode mcp --register NAME` registers on start and speaks
for it, and memory_compress reports what was archived."""

from __future__ import annotations

from mcp_harness import McpSession
from nodeproc import NodeProcess


def test_a_bridge_registered_on_start_writes_as_its_agent(shared_node: NodeProcess) -> None:
    assert shared_node.socket is not None
    with McpSession(shared_node.socket, "--register", "mcp-bot") as mcp:
        mcp.ok("memory_store", {"namespace": "agent:mcp-bot", "key": "k", "value": "mine"})
        report = mcp.ok("memory_compress", {})
        assert {"entries", "bytes", "compressed_bytes", "compression_ratio"} <= set(
            report["archive"]
        )
    with shared_node.client() as admin:
        assert admin.get("agent:mcp-bot", "k")["agent"] == "mcp-bot"
        [listed] = admin.agent_list("mcp-bot")["agents"]
        assert listed["state"] == "active" and listed["usage"]["entries"] == 1
