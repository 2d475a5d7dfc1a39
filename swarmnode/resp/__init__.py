"""The Redis protocol (RESP2 and RESP3) in front of a node's operations.

`RespServer(dispatch, socket_path=..., tcp=...)` serves the same `dispatch` the
msgpack API server uses, so redis-cli, Redis client libraries and
redis-benchmark can talk to a node. See docs/PROTOCOL.md ("Redis protocol") for the commands, how
keys map to namespaces, and what differs from Redis because the data are CRDTs.
"""

from swarmnode.resp.limits import RespLimits
from swarmnode.resp.server import InsecureRespBind, RespServer

__all__ = ["InsecureRespBind", "RespLimits", "RespServer"]
