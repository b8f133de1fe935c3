"""Text evaluators (the T2 instruments): sentiment, politeness and 28-label emotion scores.

    from emocheck.evaluators import get_evaluator, available_evaluators, score_texts
    ev = get_evaluator("politeness")
    df = ev.score(texts)   # one row per text: label columns, `score`, flags, provenance

See base.py for the output columns and the defined behaviour on edge inputs, minilm.py for the
embedded heads (and the `emotion-margin` reading), vader.py, lexicon.py (the NRC word list), hub.py for
hub classifiers, validity.py for the per-contrast validity table, and data/evaluators/README.md for the data.
"""
from .base import Evaluator, validate_texts
from .cache import SCORE_CACHE, clear_cache
from .minilm import GOEMOTIONS_LABELS
from .registry import available_evaluators, get_evaluator, register_evaluator, score_texts

__all__ = [
    "Evaluator", "GOEMOTIONS_LABELS", "SCORE_CACHE", "available_evaluators", "clear_cache",
    "get_evaluator", "register_evaluator", "score_texts", "validate_texts",
]
