"""Embedded evaluators: linear heads on frozen all-MiniLM-L6-v2 embeddings (offline, ~1 ms/text).

* `sentiment`  : softmax over negative / neutral / positive; `score` = P(positive) - P(negative).
* `politeness` : softmax over impolite / neutral / polite; `score` = P(polite) - P(impolite).
* `emotion`    : 28 one-vs-rest sigmoids, the GoEmotions labels. Each label is first fitted with its
  positives and negatives re-weighted to equal total weight, then calibrated with a per-label Platt
  scaling fitted on 5-fold cross-validated logits of the training sentences (folded into the head).
  A label's score is therefore a calibrated probability that the text expresses that label: the same
  fixed function for every text (comparable across texts) and on one probability scale for every
  label (comparable across labels; background/neutral text scores low on all emotion labels - see
  tests/test_evaluators.py::test_emotion_scores_are_calibrated_and_comparable). Platt scaling is
  monotone, so it changes no per-label ranking or AUC. Per-label decision thresholds (F1-optimal on
  the cross-validated predictions) are in data/evaluators/thresholds.json, exposed as
  `EmotionEvaluator.thresholds` and used by `predict_labels`.

Multi-sentence texts are scored sentence by sentence as well as whole (an emotion stated in one
sentence of a three-sentence email is diluted in the whole-text embedding): the text and each of its
sentences (at most MAX_UNITS, split after . ! ? and at line breaks) are scored, then combined -
emotion labels take the maximum over the units ("is this emotion expressed anywhere?"), `neutral` the
minimum; the softmax heads (sentiment, politeness) average the class probabilities over the units.
A single sentence or a fragment without sentence punctuation is one unit, so nothing changes there.
This choice was made on data/evaluators/dev_multisentence.csv (48 multi-sentence texts written for
it), never on data/emotion_prompts.csv.

The heads are data (data/evaluators/heads/*.safetensors); `model_id` names the encoder and the head's
hash, so a refitted head never mixes with scores from an older one.
"""
from __future__ import annotations

import json
import re
from functools import cached_property

import numpy as np

from .base import Evaluator
from .encoder import MINILM_MODEL_ID, get_encoder
from .heads import LinearHead
from .paths import data_dir, heads_dir

from emocheck.study import GOEMOTIONS_LABELS  # noqa: F401  (the study names its instruments by these labels)

MAX_UNITS = 16
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def split_units(text: str) -> list[str]:
    """The text itself, followed by its sentences when it has more than one (at most MAX_UNITS)."""
    sents = [s.strip() for s in _SENT_SPLIT.split(text) if s and s.strip()]
    if len(sents) <= 1:
        return [text]
    return [text] + sents[:MAX_UNITS]


class MiniLMHeadEvaluator(Evaluator):
    backend = "minilm-head"
    head_name: str = ""
    version = "2-sentence-units"  # bump when scoring changes (it is part of model_id)

    def __init__(self, name: str | None = None, batch_size: int = 64):
        self.name = name or self.dimension
        self.batch_size = batch_size
        head = self.head  # load now: a missing head is an error at construction, not at scoring
        if tuple(head.labels) != tuple(self.labels):
            raise ValueError(f"head {self.head_name} has labels {head.labels}, expected {self.labels}")
        # model id = encoder + head file hash + scoring version, so any change is a new instrument
        self.model_id = f"{MINILM_MODEL_ID}+head:{self.head_name}@{head.sha256[:12]}+v{self.version}"

    @cached_property
    def head(self) -> LinearHead:
        return LinearHead.load(heads_dir() / f"{self.head_name}.safetensors")

    @property
    def encoder(self):
        return get_encoder()

    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        units = [split_units(t) for t in texts]
        flat = [u for us in units for u in us]
        P = self.head.predict(self.encoder.encode(flat, batch_size=self.batch_size, use_cache=use_cache))
        out = np.empty((len(texts), P.shape[1]))
        i = 0
        for r, us in enumerate(units):
            out[r] = self._combine(P[i : i + len(us)])
            i += len(us)
        return out

    def _combine(self, P: np.ndarray) -> np.ndarray:
        """Scores of one text from the scores of its units (row 0: the whole text)."""
        return P.mean(axis=0)

    def _truncated(self, texts: list[str]) -> np.ndarray:
        return self.encoder.truncated(texts)


class SentimentEvaluator(MiniLMHeadEvaluator):
    dimension = "sentiment"
    labels = ("negative", "neutral", "positive")
    multi_label = False
    summary = "score"
    head_name = "sentiment"

    def _summarise(self, s: np.ndarray) -> np.ndarray:
        return s[:, 2] - s[:, 0]


class PolitenessEvaluator(MiniLMHeadEvaluator):
    dimension = "politeness"
    labels = ("impolite", "neutral", "polite")
    multi_label = False
    summary = "score"
    head_name = "politeness"

    def _summarise(self, s: np.ndarray) -> np.ndarray:
        return s[:, 2] - s[:, 0]


class EmotionEvaluator(MiniLMHeadEvaluator):
    dimension = "emotion"
    labels = GOEMOTIONS_LABELS
    multi_label = True
    summary = None
    head_name = "emotion"

    def _combine(self, P: np.ndarray) -> np.ndarray:
        out = P.max(axis=0)
        j = self.labels.index("neutral")
        out[j] = P[:, j].min()
        return out

    @cached_property
    def thresholds(self) -> dict[str, float]:
        path = data_dir() / "thresholds.json"
        if not path.exists():
            return {lab: 0.5 for lab in self.labels}
        from ..shipped import verify_shipped

        data = verify_shipped(path)
        data = path.read_bytes() if data is None else data
        return {k: float(v) for k, v in json.loads(data)["emotion"].items()}

    def predict_labels(self, texts) -> list[list[str]]:
        """Labels whose score passes its threshold (multi-label decision), per text."""
        arr = self.score_array(texts)
        th = np.array([self.thresholds.get(l, 0.5) for l in self.labels])
        return [[l for l, s, t in zip(self.labels, row, th) if s >= t] for row in arr]


MARGIN_FLOOR = 0.3   # the best of a grid 0.02-0.3 on data/evaluators/validation.csv (the project prompts were printed too)


class EmotionMarginEvaluator(EmotionEvaluator):
    """The emotion head read as "is this label the dominant emotion?": for every label, its log-odds minus
    the largest log-odds of the OTHER emotion labels (neutral excluded), that maximum floored at
    logit(MARGIN_FLOOR). The plain label probability answers "is this emotion present?" and rises for any
    affective text (anger's label fires on apologies that describe a mishap); the margin falls when another
    emotion is stronger, so it tells one emotion from another better (the specificity rows of the validity
    table) and from neutral somewhat worse. The floor keeps the ranking against neutral text, where every
    emotion is weak. Same head, same units; a monotone transform of neither the label nor the others alone,
    so it is its own instrument (its own model id and cache entries)."""

    version = "2-sentence-units+margin0.3"

    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        P = super()._score_batch(texts, use_cache=use_cache)
        Z = np.log(np.clip(P, 1e-9, 1.0) / np.clip(1.0 - P, 1e-9, 1.0))
        emo = np.array([lab != "neutral" for lab in self.labels])
        floor = np.log(MARGIN_FLOOR / (1 - MARGIN_FLOOR))
        out = np.empty_like(Z)
        for j in range(Z.shape[1]):
            others = emo.copy()
            others[j] = False
            out[:, j] = Z[:, j] - np.maximum(Z[:, others].max(axis=1), floor)
        return out
