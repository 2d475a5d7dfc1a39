"""The MCP bridge: swarmnode's memory tools for agents, over stdio, backed by the local node.

`swarmnode mcp` (or `python -m swarmnode.mcp`) serves the tools agents call
(memory_usage, memory_store, memory_search, memory_vector_search, ...) and
forwards each call to the node's Unix socket, so the MCP server, the CLI and
every other client share one store that one daemon owns. The bridge keeps no
state of its own: a node that is down makes each call fail with a clear tool
error, and the next call connects again.

Modules: `schema` (the tools' names, descriptions and input schemas, and the
argument checks derived from them), `tools` (what each tool does, in terms of
node operations), `server` (the MCP SDK wiring and the entry point). Only
`server` imports the `mcp` SDK, an optional dependency (`swarmnode[mcp]`).
The package is named `mcp` inside `swarmnode`; absolute imports keep it from
shadowing the SDK, which is always imported as top-level `mcp`.
"""
