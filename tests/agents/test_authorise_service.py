"""The authorise step in a node's service: access changes apply from the next request on."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess import InProcessNode

from swarmnode.api.session import Session
from swarmnode.errors import Forbidden


class Ctx:
    def __init__(self, session: Session) -> None:
        self.session = session


async def test_a_change_of_access_or_registration_applies_to_the_next_request(
    tmp_path: Path,
) -> None:
    node = InProcessNode(tmp_path / "n")
    call = node.service.call
    admin = Ctx(Session())
    try:
        token = (await call("agent_register", {"agent": "bob"}, admin))["token"]
        bob = Ctx(Session())
        await call("hello", {"token": token}, bob)
        await call("put", {"ns": "proj", "key": "k", "value": 1}, admin)
        assert (await call("get", {"ns": "proj", "key": "k"}, bob))["value"] == 1
        await call("ns_init", {"ns": "proj", "readers": ["ann"]}, admin)
        with pytest.raises(Forbidden):
            await call("get", {"ns": "proj", "key": "k"}, bob)
        grant = {"agent": "bob", "namespaces": {"proj": "read"}}
        fresh = (await call("agent_register", grant, admin))["token"]
        with pytest.raises(Forbidden, match="replaced"):
            await call("get", {"ns": "proj", "key": "k"}, bob)
        await call("hello", {"token": fresh}, bob)
        assert (await call("get", {"ns": "proj", "key": "k"}, bob))["value"] == 1
    finally:
        await node.close()
