"""Hub classifiers behind the same interface: `get_evaluator("hub:<model id>")`.

Wraps `transformers.pipeline("text-classification", model=<id>, top_k=None)`. Labels come from the
model's config (lower-cased); the dimension is inferred from the labels (negative/positive ->
sentiment, the GoEmotions names -> emotion, polite/impolite -> politeness) or given explicitly.
Offline (no cached copy, HF_HUB_OFFLINE=1, no network) construction raises ModelUnavailableError
saying what to do; `get_evaluator(name, fallback=True)` instead returns the embedded evaluator of the
same dimension, and its scores say which instrument ran (`evaluator`/`backend`/`model_id` columns)
and what was asked for (`requested`, plus `df.attrs["fallback_reason"]`).
"""
from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd

from ..errors import ModelUnavailableError
from .base import Evaluator

# Known hub classifiers and their dimension (others are inferred from their labels).
KNOWN_HUB_MODELS = {
    "cardiffnlp/twitter-roberta-base-sentiment-latest": "sentiment",
    "SamLowe/roberta-base-go_emotions": "emotion",
    "Intel/polite-guard": "politeness",
}

_POLITE = ("polite", "somewhat polite", "courteous")
_IMPOLITE = ("impolite", "rude", "not polite")


def hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def _infer_dimension(labels: tuple[str, ...]) -> str:
    s = set(labels)
    if {"gratitude", "anger", "remorse"} <= s:
        return "emotion"
    if {"negative", "positive"} <= s:
        return "sentiment"
    if s & set(_POLITE) or s & set(_IMPOLITE):
        return "politeness"
    return "unknown"


class HubEvaluator(Evaluator):
    backend = "transformers-pipeline"

    def __init__(self, model_id: str, dimension: str | None = None, device: str | int | None = None,
                 batch_size: int = 32, name: str | None = None):
        self.model_id = model_id
        self.name = name or f"hub:{model_id}"
        self.dimension = dimension or KNOWN_HUB_MODELS.get(model_id, "unknown")
        self.labels = ()
        self.batch_size = batch_size
        self._lock = threading.Lock()
        try:
            import transformers  # noqa: F401
        except ImportError as e:  # pragma: no cover
            raise ModelUnavailableError(f"{self.name} needs `pip install transformers torch`") from e
        offline = hub_offline()
        try:
            from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

            cfg = AutoConfig.from_pretrained(model_id, local_files_only=offline)
            tok = AutoTokenizer.from_pretrained(model_id, local_files_only=offline)
            model = AutoModelForSequenceClassification.from_pretrained(model_id, local_files_only=offline)
            self.pipe = pipeline("text-classification", model=model, tokenizer=tok, top_k=None, device=device)
        except Exception as e:  # OSError, HTTP errors, missing files...
            first = str(e).splitlines()[0][:200] if str(e) else ""
            why = f"{type(e).__name__}: {first}"
            if offline:
                why = "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set and it is not in the local cache; " + why
            raise ModelUnavailableError(
                f"hub evaluator {model_id!r} could not be loaded ({why}). To use it: run where the "
                f"Hugging Face hub is reachable once (or `huggingface-cli download {model_id}` and copy "
                "the HF_HOME cache here), and unset HF_HUB_OFFLINE; or ask for the embedded default "
                f"instead with get_evaluator({self.name!r}, fallback=True) "
                "(or set EMOCHECK_EVALUATOR_FALLBACK=1)."
            ) from e
        id2label = getattr(cfg, "id2label", None) or {}
        self.labels = tuple(str(id2label[i]).lower() for i in sorted(id2label))
        self.dimension = dimension or KNOWN_HUB_MODELS.get(model_id) or _infer_dimension(self.labels)
        self.multi_label = getattr(cfg, "problem_type", None) == "multi_label_classification" or self.dimension == "emotion"
        if self.dimension in ("sentiment", "politeness"):
            self.summary = "score"
        max_len = getattr(self.pipe.tokenizer, "model_max_length", 512) or 512
        if max_len > 100000:  # "unset" sentinel in some tokenizer configs
            max_len = 512
        pos = getattr(cfg, "max_position_embeddings", None)
        if pos:  # RoBERTa reserves 2 positions for padding offsets
            max_len = min(max_len, int(pos) - (2 if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0))
        self.max_len = int(max_len)

    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        with self._lock:
            out = self.pipe(texts, batch_size=self.batch_size, truncation=True, max_length=self.max_len)
        idx = {l: i for i, l in enumerate(self.labels)}
        arr = np.full((len(texts), len(self.labels)), np.nan)
        for r, preds in enumerate(out):
            for p in preds:
                arr[r, idx[str(p["label"]).lower()]] = float(p["score"])
        return arr

    def _summarise(self, s: np.ndarray) -> np.ndarray | None:
        idx = {l: i for i, l in enumerate(self.labels)}
        if self.dimension == "sentiment":
            return s[:, idx["positive"]] - s[:, idx["negative"]]
        pos = [idx[l] for l in _POLITE if l in idx]
        neg = [idx[l] for l in _IMPOLITE if l in idx]
        return s[:, pos].sum(1) - s[:, neg].sum(1)

    def _truncated(self, texts: list[str]) -> np.ndarray:
        enc = self.pipe.tokenizer(texts, truncation=False)["input_ids"]
        return np.array([len(x) > self.max_len for x in enc])


class FallbackEvaluator(Evaluator):
    """An embedded evaluator standing in for a hub one that could not be loaded.

    Scores come from (and are labelled with) the embedded evaluator; `requested` names the hub
    evaluator that was asked for and `df.attrs["fallback_reason"]` says why it did not run.
    """

    def __init__(self, requested: str, inner: Evaluator, reason: str):
        self.requested = requested
        self.inner = inner
        self.reason = reason
        for attr in ("name", "dimension", "labels", "multi_label", "backend", "model_id", "summary", "version"):
            setattr(self, attr, getattr(inner, attr))

    def _score_batch(self, texts, use_cache: bool = True):
        return self.inner._score_batch(texts, use_cache=use_cache)

    def _summarise(self, s):
        return self.inner._summarise(s)

    def _truncated(self, texts):
        return self.inner._truncated(texts)

    def score(self, texts, *, use_cache: bool = True, batch_size: int = 64, requested: str | None = None) -> pd.DataFrame:
        df = self.inner.score(texts, use_cache=use_cache, batch_size=batch_size, requested=requested or self.requested)
        df.attrs["fallback_reason"] = self.reason
        return df

    def __repr__(self) -> str:
        return f"FallbackEvaluator(requested={self.requested!r}, ran={self.inner!r})"
