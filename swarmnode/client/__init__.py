"""Python clients of the local swarmnode: `Client` (blocking) and `AsyncClient` (asyncio).

Both speak the frame protocol of `swarmnode.api.framing` over the node's Unix
socket (`swarmnode.paths.default_socket_path()` unless told otherwise), expose
the same named operations, and raise the typed `swarmnode.errors.SwarmError`
subclass of each error reply (`BadRequest`, `NotFound`, `Conflict`, ...). A node
that cannot be reached, or a connection lost during a call, raises
`Unavailable`; a request larger than `max_frame` raises `TooLarge` before
anything is sent.

    from swarmnode.client import Client

    with Client() as node:
        node.put("tasks", "t1", {"state": "open"}, ttl=3600)
        print(node.get("tasks", "t1"))
"""

from typing import TYPE_CHECKING, Any

from swarmnode.client.blocking import Client, Watch

if TYPE_CHECKING:
    from swarmnode.client.aio import AsyncClient, AsyncWatch

__all__ = ["AsyncClient", "AsyncWatch", "Client", "Watch"]


def __getattr__(name: str) -> Any:
    # The asyncio client loads on first use, so a one-shot `swarmnode get` from a
    # shell script does not pay for importing asyncio.
    if name in ("AsyncClient", "AsyncWatch"):
        from swarmnode.client import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
