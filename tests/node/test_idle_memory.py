"""An idle node does not load numpy (about 18 MB of resident memory) or hnswlib: they are
imported at their first use, and a vector put and search then work as before."""

from __future__ import annotations

from pathlib import Path

from nodeproc import NodeProcess


def _mapped(node: NodeProcess, library: str) -> bool:
    maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
    return f"/{library}/" in maps or f"/{library}." in maps


def test_an_idle_node_maps_no_numpy_until_a_vector_needs_it(node: NodeProcess) -> None:
    with node.client() as c:
        c.put("default", "k", "v")
        assert c.get("default", "k")["value"] == "v"
        assert not _mapped(node, "numpy") and not _mapped(node, "hnswlib")
        c.ns_init("docs", dim=4, metric="cosine")
        c.put("docs", "a", {"x": 1}, vector=[1.0, 0.0, 0.0, 0.0])
        items = c.vsearch("docs", [1.0, 0.0, 0.0, 0.0], k=1)["items"]
    assert [(i["key"], i["score"]) for i in items] == [("a", 1.0)]
    assert _mapped(node, "numpy")
