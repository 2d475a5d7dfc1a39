"""`swarmnode mcp`: the memory tools served over stdio with the official MCP SDK.

The SDK's low-level `Server` is used rather than its decorator front end
because the tools are data (`schema.TOOLS`): their input schemas are written
out, aliases share one implementation, and every outcome is turned into a
result here. A tool that fails returns `isError` with a message that says what
went wrong and what to do (MCP tool errors, which the agent reads), never a
protocol error or a crash: a node that cannot be reached is reported on that
call, the server stays up, and the next call connects again.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from swarmnode import __version__
from swarmnode.client import AsyncClient
from swarmnode.errors import SwarmError, Unavailable
from swarmnode.logs import setup_logging
from swarmnode.mcp.schema import TOOLS, ToolSpec
from swarmnode.mcp.tools import BridgeConfig, MemoryTools

log = logging.getLogger("swarmnode.mcp")

INSTRUCTIONS = """\
Shared memory of the agent swarm, served by the swarmnode daemon on this host and \
replicated to every other host. Entries live in namespaces (swarm, agents, tasks, \
patterns, decisions, notifications, default, or your own) and expire after the \
namespace's TTL unless you give one. Store with memory_store, read with memory_retrieve, \
find with memory_search (keys by glob, keywords, or meaning where the namespace has an \
embedder). Failures are reported as tool errors, never hidden: read the message before \
retrying.\
"""


def _jsonable(value: Any) -> Any:
    """Values as JSON: bytes (which msgpack may carry) become {"$bytes": base64}."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        description=spec.description,
        input_schema=spec.input_schema,
        annotations=types.ToolAnnotations(
            read_only_hint=spec.read_only,
            destructive_hint=spec.destructive if not spec.read_only else None,
            open_world_hint=False,
        ),
    )


def _error(code: str, message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=f"error ({code}): {message}")],
        structured_content={"error": {"code": code, "message": message}},
        is_error=True,
    )


async def call_tool(tools: MemoryTools, name: str, arguments: dict[str, Any] | None) -> Any:
    """One tool call as an MCP result: the answer, or a tool error saying why there is none."""
    try:
        result = _jsonable(await tools.call(name, arguments))
    except Unavailable as exc:
        return _error(
            exc.code,
            f"{exc.message}. This MCP server keeps running and connects again on the next call.",
        )
    except SwarmError as exc:
        return _error(exc.code, exc.message)
    except Exception as exc:
        log.exception("event=mcp_tool_failed tool=%s", name)
        return _error("internal", f"the swarmnode MCP bridge failed: {exc!r}")
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(result, ensure_ascii=False))],
        structured_content=result,
    )


def build_server(tools: MemoryTools) -> Server[Any]:
    """An MCP server offering `tools`; run it on any transport."""
    listing = types.ListToolsResult(tools=[_tool(spec) for spec in TOOLS])

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return listing

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        return await call_tool(tools, params.name, params.arguments)

    return Server(
        "swarmnode",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve_stdio(config: BridgeConfig) -> None:
    """Serve the tools on stdin/stdout until the client closes them."""
    client = AsyncClient(config.socket, timeout=config.timeout)
    if config.register is not None:
        # Registered by the socket's owner; from then on the bridge speaks for the agent,
        # whose private namespace agent:<id> is its own.
        reg = await client.agent_register(config.register)
        await client.close()
        client = AsyncClient(config.socket, timeout=config.timeout, token=reg["token"])
        log.info("event=mcp_agent_registered agent=%s", config.register)
    server = build_server(MemoryTools(client, config))
    log.info("event=mcp_ready socket=%s", client.socket_path)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await client.close()


def run(
    socket: Path | None = None,
    timeout: float = BridgeConfig.timeout,
    log_level: str = "warning",
    register: str | None = None,
) -> int:
    """Serve until stdin closes, logging to stderr; the exit code for `swarmnode mcp`."""
    setup_logging(log_level)
    try:
        anyio.run(serve_stdio, BridgeConfig(socket=socket, timeout=timeout, register=register))
    except KeyboardInterrupt:
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmnode mcp",
        description="Serve swarmnode's memory tools to an MCP client over stdio.",
    )
    p.add_argument("--socket", type=Path, help="node socket ($SWARMNODE_SOCKET)")
    p.add_argument(
        "--timeout",
        type=float,
        default=BridgeConfig.timeout,
        help=f"seconds to wait for the node per operation (default {BridgeConfig.timeout:g})",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    p.add_argument("--register", metavar="AGENT", help="register this agent on start and act as it")
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m swarmnode.mcp [--socket PATH] [--timeout S]`; logs go to stderr."""
    args = build_parser().parse_args(argv)
    return run(args.socket, args.timeout, args.log_level, args.register)
