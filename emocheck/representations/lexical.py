"""The keyword confound: what words alone achieve, and whether a residual direction beats them.

A lexical baseline is a logistic regression on binary word uni- and bigrams (scikit-learn), trained on
the SAME training prompts as the direction, its regularisation chosen by 5-fold cross-validation inside
the training split, and scored on the SAME held-out prompts. Two scorers of the same held-out prompts
are then compared by their AUCs:

    delong(...)            DeLong, DeLong & Clarke-Pearson (1988) variance of the difference of two
                           correlated AUCs (structural components / placement values); z, p and a
                           normal 95% interval for AUC_a - AUC_b.
    paired_auc_null(...)   a paired permutation null for AUC_a - AUC_b (Bandos, Rockette & Gur 2005):
                           each prompt's two scores, as within-scorer ranks (AUC is rank-invariant), are
                           swapped with probability 1/2. Under H0 (the scorers are exchangeable on every
                           prompt) the observed difference is one draw of this distribution, so
                           (1 + #{null >= observed}) / (K + 1) is a valid one-sided p-value.

`mask_triggers` replaces each prompt's trigger span (the phrase that carries the emotion, or for
neutral prompts the matching content phrase) by a placeholder, for claims judged without the words.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

from emocheck.errors import ConfigError

MASK = "___"
_MEMO: dict[str, np.ndarray] = {}


def lexical_scores(train_texts, train_labels, test_texts, *, ngram_range=(1, 2), seed: int = 0) -> np.ndarray:
    """Decision scores (higher = class 1) for `test_texts` from a word n-gram logistic regression fitted
    on the training texts and binary labels (1 = treated). Memoised per process: the baseline does not
    depend on the position rule or the layer, so the claims of one contrast share one fit."""
    import hashlib
    import json

    key = hashlib.sha256(json.dumps([list(map(str, train_texts)), [int(v) for v in train_labels],
                                     list(map(str, test_texts)), list(ngram_range), seed]).encode()).hexdigest()
    if key not in _MEMO:
        _MEMO[key] = _fit_and_score(train_texts, train_labels, test_texts, ngram_range, seed)
    return _MEMO[key].copy()


def _fit_and_score(train_texts, train_labels, test_texts, ngram_range, seed) -> np.ndarray:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    texts = np.asarray(list(map(str, train_texts)), dtype=object)
    y = np.asarray(train_labels).astype(int)
    if set(np.unique(y)) != {0, 1}:
        raise ConfigError("the lexical baseline needs training prompts of both groups")
    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        raise ConfigError("the lexical baseline needs at least 2 training prompts per group")

    def vectoriser():
        return CountVectorizer(ngram_range=ngram_range, binary=True, lowercase=True, token_pattern=r"(?u)\b\w+\b")

    def model(c):
        return LogisticRegression(C=c, solver="liblinear", max_iter=2000)  # liblinear: ~30x faster than lbfgs here

    # C by cross-validated AUC inside the training split; the vocabulary is refitted in every fold, so
    # no validation fold's words leak into its features (a hand-rolled GridSearchCV: one
    # vectorisation per fold instead of one per fold and C).
    grid = np.logspace(-2, 2, 5)
    cv_auc = np.zeros(len(grid))
    for fit, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        vec = vectoriser()
        x_fit, x_val = vec.fit_transform(texts[fit]), vec.transform(texts[val])
        for j, c in enumerate(grid):
            s = model(c).fit(x_fit, y[fit]).decision_function(x_val)
            cv_auc[j] += _auc_columns(s[:, None], y[val].astype(bool))[0]
    best = float(grid[int(np.argmax(cv_auc))])
    vec = vectoriser()
    final = model(best).fit(vec.fit_transform(texts), y)
    return final.decision_function(vec.transform(list(map(str, test_texts))))


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: V10[i] = P(neg < pos_i) (+ half ties), V01[j] = P(pos > neg_j)."""
    cmp = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    return cmp.mean(1), cmp.mean(0)


def delong(scores_a, scores_b, y) -> dict:
    """Compare two scorers' AUCs on the same prompts (y = 1 treated, 0 control)."""
    a, b, y = np.asarray(scores_a, float), np.asarray(scores_b, float), np.asarray(y).astype(bool)
    if a.shape != b.shape or a.shape != y.shape:
        raise ConfigError("delong: the two score vectors and the labels must have the same length")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ConfigError("delong needs at least 2 prompts in each group")
    v10a, v01a = _placements(a[y], a[~y])
    v10b, v01b = _placements(b[y], b[~y])
    auc_a, auc_b = float(v10a.mean()), float(v10b.mean())
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    var_a = s10[0, 0] / m + s01[0, 0] / n
    var_b = s10[1, 1] / m + s01[1, 1] / n
    cov_ab = s10[0, 1] / m + s01[0, 1] / n
    var = max(var_a + var_b - 2 * cov_ab, 0.0)
    delta = auc_a - auc_b
    se = float(np.sqrt(var))
    z = delta / se if se > 0 else (0.0 if delta == 0 else np.sign(delta) * np.inf)
    return {"auc_a": auc_a, "auc_b": auc_b, "delta": delta, "se": se, "z": float(z),
            "p_greater": float(sps.norm.sf(z)), "p_two_sided": float(2 * sps.norm.sf(abs(z))),
            "ci_low": delta - 1.959963984540054 * se, "ci_high": delta + 1.959963984540054 * se,
            "se_a": float(np.sqrt(max(var_a, 0))), "se_b": float(np.sqrt(max(var_b, 0))), "n_treated": m, "n_control": n}


def _auc_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUC of each column of scores [n, K] (Mann-Whitney via ranks)."""
    ranks = sps.rankdata(scores, axis=0)
    m, n = int(y.sum()), int((~y).sum())
    return (ranks[y].sum(0) - m * (m + 1) / 2) / (m * n)


def paired_auc_null(scores_a, scores_b, y, *, draws: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """(observed AUC_a - AUC_b, `draws` differences under the paired permutation null)."""
    a, b, y = np.asarray(scores_a, float), np.asarray(scores_b, float), np.asarray(y).astype(bool)
    ra, rb = sps.rankdata(a) / len(a), sps.rankdata(b) / len(b)
    observed = float(_auc_columns(ra[:, None], y)[0] - _auc_columns(rb[:, None], y)[0])
    rng = np.random.default_rng(seed)
    null = np.empty(draws)
    for start in range(0, draws, 500):
        k = min(500, draws - start)
        swap = rng.random((len(a), k)) < 0.5
        xa = np.where(swap, rb[:, None], ra[:, None])
        xb = np.where(swap, ra[:, None], rb[:, None])
        null[start:start + k] = _auc_columns(xa, y) - _auc_columns(xb, y)
    return observed, null


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided Monte Carlo p-value (1 + #{null >= observed}) / (K + 1)."""
    null = np.asarray(null, float)
    return float((1 + np.sum(null >= observed - 1e-12)) / (len(null) + 1))


def mask_triggers(texts, triggers, placeholder: str = MASK) -> list[str]:
    """Each text with (the first occurrence of) its trigger replaced by `placeholder`."""
    out = []
    for text, trigger in zip(texts, triggers):
        if not trigger or trigger not in text:
            raise ConfigError(f"cannot mask: trigger {trigger!r} is not in {text!r}")
        out.append(text.replace(trigger, placeholder, 1))
    return out
