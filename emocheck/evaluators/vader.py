"""VADER sentiment (vaderSentiment lexicon): a second, independent sentiment instrument.

Labels are VADER's own proportions negative / neutral / positive (`neg`, `neu`, `pos`), `score` is
VADER's `compound` in [-1, 1]. It shares nothing with the MiniLM heads, so agreement between the two
is evidence about the text rather than about one instrument. VADER is known to score apologies
negative and to miss some rudeness (see docs/research notes).
"""
from __future__ import annotations

import threading

import numpy as np

from .base import Evaluator


class VaderEvaluator(Evaluator):
    dimension = "sentiment"
    labels = ("negative", "neutral", "positive", "compound")
    multi_label = False
    backend = "vader"
    summary = "score"

    def __init__(self, name: str = "sentiment-vader"):
        try:
            import vaderSentiment
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:  # pragma: no cover
            from ..errors import ModelUnavailableError

            raise ModelUnavailableError("the VADER evaluator needs `pip install vaderSentiment`") from e
        self.name = name
        version = getattr(vaderSentiment, "__version__", None)
        if version is None:
            try:
                from importlib.metadata import version as _v

                version = _v("vaderSentiment")
            except Exception:  # pragma: no cover
                version = "unknown"
        self.model_id = f"vaderSentiment=={version}"
        self._analyzer = SentimentIntensityAnalyzer()
        self._lock = threading.Lock()

    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        with self._lock:
            rows = [self._analyzer.polarity_scores(t) for t in texts]
        return np.array([[r["neg"], r["neu"], r["pos"], r["compound"]] for r in rows], dtype=np.float64)

    def _summarise(self, s: np.ndarray) -> np.ndarray:
        return s[:, 3]
