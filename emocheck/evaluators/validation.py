"""Measured separation of the evaluators on data/evaluators/validation.csv.

The validation sentences were written separately from the training sentences and prototypes (other
scenarios, more narrative and generated-style fragments) and are never used for fitting or for
choosing hyper-parameters. `separation_table()` computes, for every contrast below, the AUC: the
probability that a random text of the `treated` groups scores higher (direction "greater") or lower
(direction "less") than a random text of the `control` groups. 0.5 is chance, 1.0 perfect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .paths import data_dir


@dataclass(frozen=True)
class Contrast:
    kind: str  # "vs_neutral" | "specificity"
    evaluator: str
    column: str
    treated: tuple[str, ...]
    control: tuple[str, ...]
    direction: str = "greater"

    @property
    def label(self) -> str:
        arrow = ">" if self.direction == "greater" else "<"
        return f"{self.evaluator}.{self.column}: {'+'.join(self.treated)} {arrow} {'+'.join(self.control)}"


EMO_GROUPS = ("gratitude", "anger", "apology", "joy", "sadness", "fear", "surprise", "disgust", "love", "nervousness", "pride")
GROUP_LABEL = {"apology": "remorse"}  # validation group -> GoEmotions label


def _contrasts() -> list[Contrast]:
    c: list[Contrast] = []
    N = ("neutral",)
    for g in EMO_GROUPS:
        c.append(Contrast("vs_neutral", "emotion", GROUP_LABEL.get(g, g), (g,), N))
    c.append(Contrast("vs_neutral", "emotion", "neutral", N, EMO_GROUPS))
    for ev in ("sentiment", "sentiment-vader"):
        c.append(Contrast("vs_neutral", ev, "score", ("gratitude",), N))
        c.append(Contrast("vs_neutral", ev, "score", ("joy",), N))
        c.append(Contrast("vs_neutral", ev, "score", ("anger",), N, "less"))
        c.append(Contrast("vs_neutral", ev, "score", ("sadness",), N, "less"))
        c.append(Contrast("vs_neutral", ev, "score", ("fear",), N, "less"))
    c.append(Contrast("vs_neutral", "politeness", "score", ("gratitude",), N))
    c.append(Contrast("vs_neutral", "politeness", "score", ("apology",), N))
    c.append(Contrast("vs_neutral", "politeness", "score", ("polite",), N))
    c.append(Contrast("vs_neutral", "politeness", "score", ("anger",), N, "less"))
    c.append(Contrast("vs_neutral", "politeness", "score", ("rude",), N, "less"))
    # specificity: the target emotion against the other emotions
    c.append(Contrast("specificity", "emotion", "gratitude", ("gratitude",), ("anger", "apology")))
    c.append(Contrast("specificity", "emotion", "anger", ("anger",), ("gratitude", "apology")))
    c.append(Contrast("specificity", "emotion", "remorse", ("apology",), ("gratitude", "anger")))
    # the margin reading of the same head (minilm.EmotionMarginEvaluator; its floor was chosen on this set)
    c.append(Contrast("specificity", "emotion-margin", "gratitude", ("gratitude",), ("anger", "apology")))
    c.append(Contrast("specificity", "emotion-margin", "anger", ("anger",), ("gratitude", "apology")))
    c.append(Contrast("specificity", "emotion-margin", "remorse", ("apology",), ("gratitude", "anger")))
    c.append(Contrast("vs_neutral", "emotion-margin", "anger", ("anger",), ("neutral",)))
    for g in EMO_GROUPS:
        others = tuple(o for o in EMO_GROUPS if o != g)
        c.append(Contrast("specificity", "emotion", GROUP_LABEL.get(g, g), (g,), others))
    c.append(Contrast("specificity", "politeness", "score", ("gratitude", "apology"), ("anger",)))
    c.append(Contrast("specificity", "politeness", "score", ("polite",), ("rude",)))
    c.append(Contrast("specificity", "politeness", "score", ("apology",), ("anger",)))
    for ev in ("sentiment", "sentiment-vader"):
        c.append(Contrast("specificity", ev, "score", ("gratitude",), ("anger",)))
        c.append(Contrast("specificity", ev, "score", ("gratitude", "joy", "love", "pride"), ("anger", "sadness", "fear", "disgust")))
        c.append(Contrast("specificity", ev, "score", ("gratitude",), ("apology",)))
    return c


CONTRASTS = _contrasts()


def load_validation(name: str = "validation.csv") -> pd.DataFrame:
    """The validation set (default) or another labelled set in data/evaluators/ (id, group, text)."""
    import io

    from ..shipped import verify_shipped

    path = data_dir() / name
    data = verify_shipped(path)
    return pd.read_csv(path if data is None else io.BytesIO(data))


def auc(pos, neg) -> float:
    """P(pos > neg) + 0.5 P(tie): the Mann-Whitney AUC."""
    from scipy.stats import rankdata

    pos = np.asarray(pos, dtype=float)
    neg = np.asarray(neg, dtype=float)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def separation_table(evaluators: dict | None = None, contrasts: list[Contrast] | None = None,
                     dataset: str = "validation.csv") -> pd.DataFrame:
    """AUC of every contrast on the validation set (evaluators: name -> Evaluator, default get_evaluator).

    Contrasts whose groups are missing from `dataset` are skipped."""
    from .registry import get_evaluator

    val = load_validation(dataset)
    present = set(val["group"])
    contrasts = [c for c in (contrasts or CONTRASTS) if set(c.treated) <= present and set(c.control) & present]
    names = sorted({c.evaluator for c in contrasts})
    evs = {n: (evaluators or {}).get(n) or get_evaluator(n) for n in names}
    scores = {n: ev.score(val["text"].tolist()) for n, ev in evs.items()}
    rows = []
    for c in contrasts:
        s = scores[c.evaluator][c.column].to_numpy()
        if not set(c.control) <= present:
            continue
        t = s[val["group"].isin(c.treated).to_numpy()]
        k = s[val["group"].isin(c.control).to_numpy()]
        a = auc(t, k) if c.direction == "greater" else auc(-t, -k)
        rows.append({"kind": c.kind, "evaluator": c.evaluator, "model_id": evs[c.evaluator].model_id,
                     "column": c.column, "contrast": c.label, "n_treated": len(t), "n_control": len(k), "auc": a})
    return pd.DataFrame(rows)
