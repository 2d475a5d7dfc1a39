"""Where a node keeps its data and its socket when nobody says otherwise.

Node, CLI, client and MCP bridge all resolve paths here, so every surface finds
the same daemon: an absolute path that never depends on the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

SOCKET_NAME = "swarmnode.sock"


def default_data_dir() -> Path:
    """`$SWARMNODE_DATA_DIR`, else `$XDG_DATA_HOME/swarmnode`, else `~/.local/share/swarmnode`."""
    env = os.environ.get("SWARMNODE_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "swarmnode").resolve()


def socket_path_for(data_dir: Path) -> Path:
    """The socket lives in an owner-only `run/` directory under the data dir."""
    return Path(data_dir).resolve() / "run" / SOCKET_NAME


def default_socket_path() -> Path:
    """`$SWARMNODE_SOCKET`, else the socket under the default data dir."""
    env = os.environ.get("SWARMNODE_SOCKET")
    if env:
        return Path(env).expanduser().resolve()
    return socket_path_for(default_data_dir())
