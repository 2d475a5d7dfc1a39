"""A node that is down is reported on every call, and the MCP server outlives it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mcp_harness import McpSession
from nodeproc import NodeProcess


def test_unreachable_node_is_a_tool_error_and_the_server_reconnects_when_it_is_back(
    launch_node: Callable[..., NodeProcess], short_tmp: Path
) -> None:
    data_dir, socket = short_tmp / "data", short_tmp / "node.sock"
    with McpSession(socket) as mcp:
        # No node yet: the server starts anyway and lists its tools.
        assert len(mcp.list_tools()) == 15
        code, message = mcp.error("memory_store", {"key": "k", "value": "v"})
        assert code == "unavailable"
        assert str(socket) in message and "swarmnode run" in message

        node = launch_node(data_dir, socket_path=socket)
        mcp.ok("memory_store", {"namespace": "t-outage", "key": "k", "value": "kept"})

        # The node stops in the middle of the session.
        node.stop()
        code, message = mcp.error("memory_retrieve", {"namespace": "t-outage", "key": "k"})
        assert code == "unavailable" and "connects again on the next call" in message
        code, _ = mcp.error("memory_search", {"pattern": "k"})
        assert code == "unavailable"

        # Back on the same data: the next call works and sees what was stored.
        launch_node(data_dir, socket_path=socket)
        got = mcp.ok("memory_retrieve", {"namespace": "t-outage", "key": "k"})
        assert got["value"] == "kept"
