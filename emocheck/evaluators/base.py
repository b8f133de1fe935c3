"""The one evaluator interface shared by every dimension and backend.

An evaluator has a `name` (what the caller asked for, e.g. "politeness"), a `dimension`
("sentiment", "politeness", "emotion"), its `labels`, whether it is `multi_label`, the `backend`
that computes it ("minilm-head", "vader", "transformers-pipeline") and the `model_id` of the
model/lexicon/head. `score(texts)` returns a DataFrame with one row per text:

* one float column per label (probabilities for the embedded MiniLM heads and hub pipelines,
  VADER's neg/neu/pos proportions for VADER);
* `score`: a scalar summary where the dimension has one (sentiment: P(positive) - P(negative),
  VADER: compound; politeness: P(polite) - P(impolite); emotion: none, use the label columns);
* flags `empty` (text was empty or whitespace only: every score is NaN) and `truncated` (the
  text was longer than the model's window and only its beginning was scored);
* provenance columns `evaluator`, `backend`, `model_id`, `requested` (the name asked for; it differs
  from `evaluator` only when a hub evaluator fell back to an embedded one), repeated in `df.attrs`.

Defined behaviour for edge inputs (tested in tests/test_evaluators_edge.py):
* `texts` must be a list/tuple/Series/array of str; a bare str raises TypeError (it would otherwise
  be scored character by character); a non-str element raises TypeError naming its index.
* empty or whitespace-only string -> all label scores and `score` NaN, `empty=True`.
* very long text -> scored on its first window (256 word pieces for MiniLM), `truncated=True`.
* non-English text -> scored like any text; the embedded instruments are English-only, so such
  scores are defined (finite) but not meaningful.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..storage import stable_hash
from .cache import SCORE_CACHE, ScoreCache

PROVENANCE_COLUMNS = ("evaluator", "backend", "model_id", "requested")
FLAG_COLUMNS = ("empty", "truncated")


def validate_texts(texts) -> list[str]:
    """Return `texts` as a list of str, or raise TypeError naming the first bad index."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "texts must be a sequence of strings, not a single "
            f"{type(texts).__name__}; wrap it in a list: score([text])"
        )
    if isinstance(texts, pd.Series):
        texts = texts.tolist()
    elif isinstance(texts, np.ndarray):
        texts = texts.tolist()
    elif not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a sequence of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__} ({t!r:.40}), not str; every text must be a str")
    return out


class Evaluator(ABC):
    """Base class. Subclasses set the attributes and implement `_score_batch`."""

    name: str
    dimension: str
    labels: tuple[str, ...]
    multi_label: bool
    backend: str
    model_id: str
    summary: str | None = None  # name of the scalar summary column, if any
    version: str = "1"

    cache: ScoreCache = SCORE_CACHE

    # ----------------------------------------------------------------- identity
    @property
    def fingerprint(self) -> str:
        return stable_hash(
            {
                "name": self.name,
                "backend": self.backend,
                "model_id": self.model_id,
                "labels": list(self.labels),
                "version": self.version,
            }
        )

    def provenance(self, requested: str | None = None) -> dict[str, str]:
        return {
            "evaluator": self.name,
            "backend": self.backend,
            "model_id": self.model_id,
            "requested": requested or self.name,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dimension={self.dimension!r}, "
            f"backend={self.backend!r}, model_id={self.model_id!r}, labels={len(self.labels)})"
        )

    # --------------------------------------------------------------- subclasses
    @abstractmethod
    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        """Scores of non-empty texts: float array (len(texts), len(self.labels)).

        use_cache=False asks the backend to bypass any inner cache (e.g. the encoder's embeddings)."""

    def _summarise(self, scores: np.ndarray) -> np.ndarray | None:
        """Scalar summary per text from the label scores (None: no summary column)."""
        return None

    def _truncated(self, texts: list[str]) -> np.ndarray:
        return np.zeros(len(texts), dtype=bool)

    # ------------------------------------------------------------------- public
    def score_array(self, texts: Sequence[str], *, use_cache: bool = True, batch_size: int = 64) -> np.ndarray:
        """Label scores as a (n, n_labels) float array; NaN rows for empty texts (timed as phase
        ``evaluators``, attributed to the model of the phase it runs in)."""
        from emocheck import timing

        texts = validate_texts(texts)
        with timing.phase("evaluators", texts=len(texts)):
            return self._score_array(texts, use_cache=use_cache, batch_size=batch_size)

    def _score_array(self, texts: list[str], *, use_cache: bool, batch_size: int) -> np.ndarray:
        n, k = len(texts), len(self.labels)
        out = np.full((n, k), np.nan, dtype=np.float64)
        fp = self.fingerprint
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if not t.strip():
                continue
            row = self.cache.get(fp, t) if use_cache else None
            if row is not None:
                out[i] = row
            else:
                todo.setdefault(t, []).append(i)  # each distinct text computed once
        if todo:
            uniq = list(todo)
            for start in range(0, len(uniq), max(1, batch_size) * 16):
                chunk = uniq[start : start + max(1, batch_size) * 16]
                scores = np.asarray(self._score_batch(chunk, use_cache=use_cache), dtype=np.float64)
                if scores.shape != (len(chunk), k):
                    raise RuntimeError(f"{self!r} returned shape {scores.shape}, expected {(len(chunk), k)}")
                for t, row in zip(chunk, scores):
                    for i in todo[t]:
                        out[i] = row
                    if use_cache:
                        self.cache.put(fp, t, row)
        return out

    def score(self, texts: Sequence[str], *, use_cache: bool = True, batch_size: int = 64,
              requested: str | None = None) -> pd.DataFrame:
        """Score many texts at once: one row per text (see the module docstring for columns)."""
        texts = validate_texts(texts)
        arr = self.score_array(texts, use_cache=use_cache, batch_size=batch_size)
        df = pd.DataFrame(arr, columns=list(self.labels))
        if self.summary:
            summ = self._summarise(arr)
            df[self.summary] = summ
        empty = np.array([not t.strip() for t in texts], dtype=bool)
        df["empty"] = empty
        trunc = np.zeros(len(texts), dtype=bool)
        nonempty = [i for i in range(len(texts)) if not empty[i]]
        if nonempty:
            trunc[nonempty] = self._truncated([texts[i] for i in nonempty])
        df["truncated"] = trunc
        prov = self.provenance(requested)
        for col, val in prov.items():
            df[col] = val
        df.attrs.update(prov)
        df.attrs["dimension"] = self.dimension
        df.attrs["labels"] = list(self.labels)
        df.attrs["multi_label"] = self.multi_label
        df.attrs["summary"] = self.summary
        return df

    def score_one(self, text: str) -> dict[str, float]:
        """Convenience: scores of one text as {label: score} (plus the summary)."""
        row = self.score([text]).iloc[0]
        keys = list(self.labels) + ([self.summary] if self.summary else [])
        return {k: float(row[k]) for k in keys}

