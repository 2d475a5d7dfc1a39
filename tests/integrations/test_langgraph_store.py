"""SwarmnodeStore against LangGraph's own classes, on real nodes.

Two `swarmnode run` processes joined into one cluster stand for two agent
hosts: a LangGraph graph on one writes memories through its store, and a graph
on the other finds them through its own local node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, Item, SearchItem

from swarmnode.integrations.langgraph import SwarmnodeStore
from tests.cluster.procs import Cluster
from tests.nodeproc import remove_dir, short_dir

MODEL = "all-MiniLM-L6-v2"
WAIT = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = short_dir("snl-")
    cluster = Cluster.start(base, 2)
    try:
        with cluster.nodes[0].client() as admin:
            admin.ns_init("langgraph", embedder=MODEL)
        yield cluster
    finally:
        cluster.close()
        remove_dir(base)


@pytest.fixture
def stores(cluster: Cluster) -> Iterator[tuple[SwarmnodeStore, SwarmnodeStore]]:
    a = SwarmnodeStore(socket_path=str(cluster.nodes[0].socket), index={"fields": ["text"]})
    b = SwarmnodeStore(socket_path=str(cluster.nodes[1].socket), index={"fields": ["text"]})
    yield a, b
    a.close()
    b.close()


def eventually(check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def test_get_put_delete_keep_the_item_and_its_times(stores) -> None:
    store, _ = stores
    ns = ("users", "u1", "prefs")
    store.put(ns, "theme", {"text": "dark mode", "level": 3})
    item = store.get(ns, "theme")
    assert isinstance(item, Item)
    assert item.value == {"text": "dark mode", "level": 3} and item.namespace == ns
    first = item.created_at
    store.put(ns, "theme", {"text": "light mode", "level": 4})
    again = store.get(ns, "theme")
    assert again.value["text"] == "light mode" and again.created_at == first
    assert again.updated_at >= item.updated_at
    store.delete(ns, "theme")
    assert store.get(ns, "theme") is None


def test_search_filters_pages_and_finds_by_meaning(stores) -> None:
    store, _ = stores
    ns = ("docs", "team")
    facts = {
        "f1": {"text": "the deploy pipeline runs on every merge to main", "kind": "ops", "n": 1},
        "f2": {"text": "our cat likes to sleep on the warm laptop", "kind": "pets", "n": 2},
        "f3": {"text": "rollbacks use the previous container image", "kind": "ops", "n": 3},
    }
    for key, value in facts.items():
        store.put(ns, key, value)
    store.put(("docs", "other"), "f4", {"text": "unrelated", "kind": "ops", "n": 4})
    listed = store.search(("docs", "team"), filter={"kind": "ops"})
    assert {i.key for i in listed} == {"f1", "f3"}
    assert all(isinstance(i, SearchItem) for i in listed)
    assert len(store.search(("docs",), filter={"kind": "ops"})) == 3
    assert [i.key for i in store.search(("docs", "team"), filter={"n": {"$gte": 2}})] in (
        ["f3", "f2"],
        ["f2", "f3"],
    )
    assert len(store.search(("docs",), limit=2)) == 2
    assert len(store.search(("docs",), limit=2, offset=3)) == 1
    hits = store.search(("docs", "team"), query="how do we ship code to production?", limit=2)
    assert hits[0].key == "f1" and hits[0].score >= hits[1].score
    pets = store.search(("docs",), query="animals", filter={"kind": "pets"}, limit=1)
    assert [h.key for h in pets] == ["f2"]


def test_list_namespaces_with_prefixes_suffixes_and_depth(stores) -> None:
    store, _ = stores
    for ns in (("a", "x", "mem"), ("a", "y", "mem"), ("b", "x", "notes")):
        store.put(ns, "k", {"text": "t"})
    listed = store.list_namespaces(prefix=("a",))
    assert listed == [("a", "x", "mem"), ("a", "y", "mem")]
    assert ("b", "x", "notes") in store.list_namespaces(suffix=("notes",))
    assert store.list_namespaces(prefix=("a",), max_depth=1) == [("a",)]
    assert store.list_namespaces(prefix=("a", "*", "mem")) == listed


def test_ttl_expires_an_item_everywhere(stores) -> None:
    store, _ = stores
    assert store.supports_ttl
    store.put(("tmp",), "short", {"text": "gone soon"}, ttl=0.02)  # minutes: 1.2 s
    assert store.get(("tmp",), "short", refresh_ttl=False) is not None
    eventually(lambda: store.get(("tmp",), "short", refresh_ttl=False) is None)


async def test_the_async_form_shares_the_same_items(stores) -> None:
    store, _ = stores
    await store.aput(("async",), "k", {"text": "from asyncio"})
    item = await store.aget(("async",), "k")
    assert item.value == {"text": "from asyncio"}
    assert [i.key for i in await store.asearch(("async",))] == ["k"]
    await store.adelete(("async",), "k")
    assert await store.aget(("async",), "k") is None
    await store.aclose()


class State(TypedDict):
    user: str
    note: str
    recalled: list[str]


def remember(state: State, *, store: BaseStore) -> dict:
    store.put(("memories", state["user"]), f"n{len(state['note'])}", {"text": state["note"]})
    return {}


def recall(state: State, *, store: BaseStore) -> dict:
    hits = store.search(("memories", state["user"]), query=state["note"], limit=3)
    return {"recalled": [h.value["text"] for h in hits]}


def test_graphs_on_two_hosts_share_one_memory(stores) -> None:
    on_a, on_b = stores
    writer = StateGraph(State)
    writer.add_node("remember", remember)
    writer.add_edge(START, "remember")
    writer.add_edge("remember", END)
    reader = StateGraph(State)
    reader.add_node("recall", recall)
    reader.add_edge(START, "recall")
    reader.add_edge("recall", END)
    writer.compile(store=on_a).invoke(
        {"user": "u9", "note": "the user prefers answers in French", "recalled": []}
    )
    graph = reader.compile(store=on_b)

    def recalled() -> list[str]:
        state = graph.invoke({"user": "u9", "note": "which language to answer in", "recalled": []})
        return state["recalled"]

    assert eventually(recalled) == ["the user prefers answers in French"]
