"""Evaluators by name: `get_evaluator`, `available_evaluators`, `register_evaluator`, `score_texts`.

Embedded names (offline, no download): "sentiment" (MiniLM head), "sentiment-vader" (VADER),
"politeness" (MiniLM head), "emotion" (MiniLM head, 28 GoEmotions labels), "emotion-margin" (the same
head as each label's log-odds margin over the strongest other emotion: the specific reading), "emotion-nrc" (the NRC
Emotion Lexicon word list shipped by `nrclex`: 8 emotions + 2 polarities, see lexicon.py). Hub names:
"hub:<model id>" (any text-classification model), plus short aliases "hub-sentiment",
"hub-emotion", "hub-politeness". Instances are created once per process and reused.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, ModelUnavailableError
from .base import Evaluator, validate_texts

_FACTORIES: dict[str, Callable[[], Evaluator]] = {}
_INSTANCES: dict[tuple[str, bool], Evaluator] = {}
_LOCK = threading.RLock()

HUB_ALIASES = {
    "hub-sentiment": "hub:cardiffnlp/twitter-roberta-base-sentiment-latest",
    "hub-emotion": "hub:SamLowe/roberta-base-go_emotions",
    "hub-politeness": "hub:Intel/polite-guard",
}
EMBEDDED_FOR_DIMENSION = {"sentiment": "sentiment", "emotion": "emotion", "politeness": "politeness"}


def register_evaluator(name: str, factory: Callable[[], Evaluator], *, replace: bool = False) -> None:
    """Make `get_evaluator(name)` build `factory()` (once per process)."""
    with _LOCK:
        if name in _FACTORIES and not replace:
            raise ConfigError(f"evaluator {name!r} is already registered (pass replace=True)")
        _FACTORIES[name] = factory
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def _register_defaults() -> None:
    from .minilm import EmotionEvaluator, EmotionMarginEvaluator, PolitenessEvaluator, SentimentEvaluator
    from .lexicon import NRCLexiconEvaluator
    from .vader import VaderEvaluator

    _FACTORIES.setdefault("sentiment", lambda: SentimentEvaluator("sentiment"))
    _FACTORIES.setdefault("sentiment-vader", lambda: VaderEvaluator("sentiment-vader"))
    _FACTORIES.setdefault("politeness", lambda: PolitenessEvaluator("politeness"))
    _FACTORIES.setdefault("emotion", lambda: EmotionEvaluator("emotion"))
    _FACTORIES.setdefault("emotion-margin", lambda: EmotionMarginEvaluator("emotion-margin"))
    _FACTORIES.setdefault("emotion-nrc", lambda: NRCLexiconEvaluator("emotion-nrc"))


_register_defaults()


def available_evaluators() -> list[str]:
    """Registered names (embedded defaults first), the hub aliases and the names installed plugins
    provide (entry point group ``emocheck.evaluators``, not imported until used); any "hub:<id>" also works."""
    from emocheck.extensions import EVALUATORS_GROUP, names

    known = list(_FACTORIES) + list(HUB_ALIASES)
    return known + [n for n in names(EVALUATORS_GROUP) if n not in known]


def _load_plugin_evaluator(name: str) -> bool:
    """Register the evaluator factory an installed plugin declares under `name` (entry point group
    ``emocheck.evaluators``); False when none does."""
    from emocheck.extensions import EVALUATORS_GROUP, load_once

    def register(factory, describe):
        if not callable(factory):
            raise ConfigError(f"the {describe} gave {type(factory).__name__}, not a factory (a callable "
                              "returning an emocheck Evaluator)")

        def build():
            try:
                inst = factory()
            except Exception as exc:  # noqa: BLE001 - any failure of a plugin is reported the same way
                raise ConfigError(f"the {describe} raised {type(exc).__name__}: {exc}") from exc
            if not isinstance(inst, Evaluator):
                raise ConfigError(f"the {describe} built {type(inst).__name__}, not an "
                                  "emocheck.evaluators.base.Evaluator")
            return inst

        register_evaluator(name, build, replace=True)

    return load_once(EVALUATORS_GROUP, name, register)


def _fallback_default() -> bool:
    return os.environ.get("EMOCHECK_EVALUATOR_FALLBACK", "").strip().lower() in ("1", "true", "yes", "on")


def get_evaluator(name: str, *, fallback: bool | None = None, dimension: str | None = None) -> Evaluator:
    """The evaluator called `name`, built once per process.

    fallback: for hub evaluators only - if the hub model cannot be loaded, return the embedded
    evaluator of the same dimension (its scores record `requested=name`) instead of raising
    ModelUnavailableError. Default: $EMOCHECK_EVALUATOR_FALLBACK (off).
    """
    if not isinstance(name, str):
        raise TypeError(f"evaluator name must be a str, got {type(name).__name__}")
    fallback = _fallback_default() if fallback is None else bool(fallback)
    key = HUB_ALIASES.get(name, name)
    with _LOCK:
        inst = _INSTANCES.get((key, fallback))
        if inst is not None:
            return inst
        if key not in _FACTORIES and not key.startswith("hub:"):
            _load_plugin_evaluator(key)     # an installed plugin's entry point of that name, if any
        if key in _FACTORIES:
            inst = _FACTORIES[key]()
        elif key.startswith("hub:"):
            from .hub import KNOWN_HUB_MODELS, FallbackEvaluator, HubEvaluator

            model_id = key[4:]
            try:
                inst = HubEvaluator(model_id, dimension=dimension, name=key)
            except ModelUnavailableError as e:
                if not fallback:
                    raise
                dim = dimension or KNOWN_HUB_MODELS.get(model_id)
                if dim not in EMBEDDED_FOR_DIMENSION:
                    raise ModelUnavailableError(
                        f"{e} (no embedded fallback: dimension of {model_id!r} unknown; pass dimension="
                        f"'sentiment'|'politeness'|'emotion')"
                    ) from e
                inner = get_evaluator(EMBEDDED_FOR_DIMENSION[dim])
                inst = FallbackEvaluator(key, inner, reason=str(e))
        else:
            raise ConfigError(
                f"unknown evaluator {name!r}; choose one of {', '.join(available_evaluators())} "
                "or 'hub:<model id>'"
            )
        _INSTANCES[(key, fallback)] = inst
        return inst


def score_texts(texts: Sequence[str], evaluators: Sequence[str | Evaluator] = ("sentiment", "politeness", "emotion"),
                *, fallback: bool | None = None, use_cache: bool = True) -> pd.DataFrame:
    """Score `texts` with several evaluators: long DataFrame with columns
    text_index, evaluator, backend, model_id, requested, label, score (summary rows have label 'score')."""
    texts = validate_texts(texts)
    if isinstance(evaluators, (str, Evaluator)):
        evaluators = [evaluators]
    frames = []
    for ev in evaluators:
        ev_obj = ev if isinstance(ev, Evaluator) else get_evaluator(ev, fallback=fallback)
        df = ev_obj.score(texts, use_cache=use_cache)
        cols = list(ev_obj.labels) + ([ev_obj.summary] if ev_obj.summary else [])
        vals = df[cols].to_numpy(dtype=np.float64)  # (n, len(cols))
        n = len(texts)
        long = pd.DataFrame({
            "text_index": np.repeat(np.arange(n), len(cols)),
            "evaluator": df.attrs["evaluator"],
            "backend": df.attrs["backend"],
            "model_id": df.attrs["model_id"],
            "requested": df.attrs["requested"],
            "label": np.tile(np.array(cols, dtype=object), n),
            "score": vals.reshape(-1),
        })
        frames.append(long)
    if not frames:
        return pd.DataFrame(columns=["text_index", "evaluator", "backend", "model_id", "requested", "label", "score"])
    return pd.concat(frames, ignore_index=True)
