"""A real `swarmnode mcp` subprocess driven by the `mcp` SDK's client session.

The session lives on a thread with its own event loop, so tests stay plain
functions and one session can serve a whole module: the SDK's transports are
anyio task groups that must be entered and left by the same task, which an
async pytest fixture does not guarantee.

This directory has no `__init__.py` on purpose: as a package it would be
imported as top-level `mcp` and shadow the SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from nodeproc import swarmnode_command

CALL_TIMEOUT = 120.0
"""Seconds before a stuck call fails the test instead of hanging it; never reached normally."""


def bridge_command(socket: Path) -> tuple[str, list[str]]:
    """How an MCP client starts the bridge: `swarmnode mcp --socket PATH`."""
    command = swarmnode_command()
    return command[0], [*command[1:], "mcp", "--socket", str(socket)]


class McpSession:
    """One MCP client session over stdio to one bridge process."""

    def __init__(self, socket: Path, *extra: str) -> None:
        """`extra`: further arguments of `swarmnode mcp` (`--register NAME`)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._closing: asyncio.Event | None = None
        self._session: ClientSession | None = None
        self._ready = threading.Event()
        command, args = bridge_command(socket)
        # The SDK passes only a few variables to the server; keep the test's import path.
        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else None
        self._params = StdioServerParameters(command=command, args=[*args, *extra], env=env)
        self._runner = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self._ready.wait(CALL_TIMEOUT)
        if self._session is None:
            self._runner.result(0)  # raises whatever stopped the session from opening
            raise RuntimeError("the MCP session did not open")

    async def _run(self) -> None:
        self._closing = asyncio.Event()
        try:
            async with (
                stdio_client(self._params) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self._session = session
                self._ready.set()
                await self._closing.wait()
        finally:
            self._ready.set()

    def _do(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    def list_tools(self) -> list[types.Tool]:
        assert self._session is not None
        return self._do(self._session.list_tools()).tools

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        assert self._session is not None
        return self._do(self._session.call_tool(name, arguments or {}))

    def ok(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The structured result of a call that must succeed; its text must say the same."""
        result = self.call(name, arguments)
        text = result.content[0].text
        assert not result.is_error, text
        assert json.loads(text) == result.structured_content
        return result.structured_content

    def error(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[str, str]:
        """(code, message) of a call that must fail with a tool error."""
        result = self.call(name, arguments)
        assert result.is_error, result.content[0].text
        err = result.structured_content["error"]
        assert result.content[0].text == f"error ({err['code']}): {err['message']}"
        return err["code"], err["message"]

    def close(self) -> None:
        if self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._runner.result(CALL_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> McpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
