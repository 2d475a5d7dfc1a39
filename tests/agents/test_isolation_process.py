"""Isolation on a real node: another agent's token finds nothing of a private namespace.

One `swarmnode run` process with tokens required. `ann` keeps a secret in her
private namespace `agent:ann` (with a vector) and both agents share `team`.
`bob` then tries every way in that leaks most easily: reads of the namespace,
searches across namespaces, vector search, streams, listings, statistics,
analytics, compaction, snapshots, the archive. Each answer is checked for the
namespace's name and the secret: the only place either may appear is a
`forbidden` refusal naming the namespace bob asked for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import NodeProcess, remove_dir, short_dir, start_node

from swarmnode.client import Client
from swarmnode.errors import Forbidden, QuotaExceeded

SECRET = "ann-only-7f3a"
PRIVATE = "agent:ann"
WAIT = 60.0


def write_config(directory: Path, text: str) -> Path:
    path = directory / "node.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    base = short_dir("sna-")
    config = write_config(base, "[agents]\nrequire_tokens = true\n")
    proc = start_node(base / "data", "--config", str(config))
    try:
        yield proc
    finally:
        proc.close()
        remove_dir(base)


@pytest.fixture(scope="module")
def tokens(node: NodeProcess) -> dict[str, str]:
    with node.client() as admin:
        out = {}
        for agent, extra in (
            ("ann", {"namespaces": {"team": "write"}}),
            ("bob", {"namespaces": {"team": "write"}}),
        ):
            out[agent] = admin.agent_register(agent, **extra)["token"]
    with Client(node.socket, timeout=WAIT, token=out["ann"]) as ann:
        ann.ns_init(PRIVATE, dim=2)
        ann.put(PRIVATE, "plan", SECRET, vector=[1.0, 0.0], meta={"tag": SECRET})
        ann.sadd(PRIVATE, "set", [SECRET])
        ann.put("team", "hello", "shared note")
    return out


@pytest.fixture
def bob(node: NodeProcess, tokens: dict[str, str]) -> Iterator[Client]:
    with Client(node.socket, timeout=WAIT, token=tokens["bob"]) as client:
        yield client


def assert_clean(answer: Any) -> None:
    text = repr(answer)
    assert PRIVATE not in text and SECRET not in text, text[:400]


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(Forbidden) as info:
        call(*args, **kwargs)
    assert SECRET not in info.value.message
    return info.value.message


def test_reads_of_a_private_namespace_are_forbidden_and_name_it(bob: Client) -> None:
    for call, args, kwargs in (
        (bob.get, (PRIVATE, "plan"), {}),
        (bob.list, (PRIVATE,), {"values": True}),
        (bob.smembers, (PRIVATE, "set"), {}),
        (bob.vsearch, (PRIVATE, [1.0, 0.0]), {}),
        (bob.search, (SECRET,), {"ns": PRIVATE}),
        (bob.ns_stats, (PRIVATE,), {}),
        (bob.archive_list, (PRIVATE,), {}),
        (bob.archive_get, (PRIVATE, "plan"), {}),
        (bob.put, (PRIVATE, "plan", "overwritten"), {}),
        (bob.delete, (PRIVATE, "plan"), {}),
        (bob.ns_delete, (PRIVATE,), {}),
        (bob.restore, ("any-session",), {"ns": PRIVATE}),
    ):
        assert PRIVATE in refused(call, *args, **kwargs)


def test_answers_spanning_namespaces_leave_the_private_one_out(bob: Client) -> None:
    found = bob.search("ann")
    assert_clean(found)
    assert bob.search("shared")["items"], "bob reads team"
    assert_clean(bob.call("search", pattern=SECRET[:5], **{"in": "values"}))
    assert_clean(bob.ns_list())
    assert_clean(bob.ns_stats())
    assert_clean(bob.stats())
    assert_clean(bob.analytics())
    assert_clean(bob.compact())
    assert_clean(bob.agent_list())


def test_errors_about_unknown_namespaces_do_not_list_private_ones(bob: Client) -> None:
    from swarmnode.errors import NotFound

    with pytest.raises(NotFound) as info:
        bob.get("no-such-namespace", "k")
    assert PRIVATE not in info.value.message


def test_snapshots_are_the_administrators(bob: Client) -> None:
    refused(bob.persist, "bob-copy")
    refused(bob.restore, "bob-copy")


def test_a_watch_of_everything_streams_nothing_of_the_private_namespace(
    node: NodeProcess, tokens: dict[str, str], bob: Client
) -> None:
    events: list[Any] = []
    done = threading.Event()
    with bob.watch() as stream:

        def read() -> None:
            for event in stream:
                events.append(event)
                if event["ns"] == "team" and event["key"] == "last":
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with Client(node.socket, timeout=WAIT, token=tokens["ann"]) as ann:
            ann.put(PRIVATE, "plan2", SECRET)
            ann.put("team", "last", "done")
        assert done.wait(WAIT)
    assert_clean(events)
    assert [e["key"] for e in events if e["ns"] == "team"] == ["last"]
    assert events[-1]["agent"] == "ann"


def test_get_shows_which_agent_wrote(node: NodeProcess, tokens: dict[str, str]) -> None:
    with Client(node.socket, timeout=WAIT, token=tokens["ann"]) as ann:
        assert ann.get(PRIVATE, "plan")["agent"] == "ann"


def test_tokens_are_needed_and_checked(node: NodeProcess) -> None:
    with node.client() as admin:
        # The socket's owner without a token is the administrator.
        assert admin.hello()["admin"] is True
    with pytest.raises(Forbidden):
        Client(node.socket, timeout=WAIT, token="sn_ann.0000.not-the-secret").ping()


def test_a_revoked_token_is_refused_from_the_next_request_on(node: NodeProcess) -> None:
    with node.client() as admin:
        token = admin.agent_register("eve", namespaces={"team": "read"})["token"]
        with Client(node.socket, timeout=WAIT, token=token) as eve:
            assert eve.get("team", "hello")["value"] == "shared note"
            admin.agent_revoke("eve")
            refused(eve.get, "team", "hello")
        with pytest.raises(Forbidden):
            Client(node.socket, timeout=WAIT, token=token).connect()
        assert admin.agent_list("eve")["agents"][0]["state"] == "revoked"


def test_an_expired_lease_is_refused(node: NodeProcess) -> None:
    with node.client() as admin:
        token = admin.agent_register("fay", lease=1)["token"]
        deadline = time.monotonic() + WAIT
        while admin.agent_list("fay")["agents"][0]["state"] != "expired":
            assert time.monotonic() < deadline, "the lease never lapsed"
            time.sleep(0.05)
    with pytest.raises(Forbidden) as info:
        Client(node.socket, timeout=WAIT, token=token).connect()
    assert "expired" in info.value.message


def test_writes_past_a_quota_are_refused_saying_usage_and_limit(node: NodeProcess) -> None:
    limit = 4000
    with node.client() as admin:
        token = admin.agent_register("gus", quota={"bytes": limit, "entries": 100})["token"]
    with Client(node.socket, timeout=WAIT, token=token) as gus:
        written = 0
        with pytest.raises(QuotaExceeded) as info:
            for i in range(1000):
                gus.put("agent:gus", f"k{i}", "v" * 200)
                written += 1
        assert written > 5
        usage = gus.agent_list()["agents"][0]["usage"]
        assert usage["bytes"] <= limit
        assert f"{limit} bytes" in info.value.message and str(usage["bytes"]) in info.value.message
        # At the limit, overwriting one's own entry with one no larger is still allowed.
        gus.put("agent:gus", "k0", "w" * 200)


def test_without_owner_rights_an_unauthenticated_connection_may_only_ping_and_hello() -> None:
    base = short_dir("snb-")
    config = write_config(base, "[agents]\nrequire_tokens = true\nowner_is_admin = false\n")
    proc = start_node(base / "data", "--config", str(config))
    try:
        with proc.client() as anonymous:
            assert anonymous.ping()["pong"] is True
            assert anonymous.hello()["authenticated"] is False
            for call, args in (
                (anonymous.get, ("default", "k")),
                (anonymous.put, ("default", "k", 1)),
                (anonymous.ns_list, ()),
                (anonymous.stats, ()),
                (anonymous.agent_register, ("me",)),
            ):
                with pytest.raises(Forbidden):
                    call(*args)
    finally:
        with contextlib.suppress(Exception):
            proc.close()
        remove_dir(base)
