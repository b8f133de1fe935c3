"""Fit the embedded heads: `python -m emocheck.evaluators.train`.

Reads the training files listed in label_map.json ("files": train_emotion.csv, train_politeness.csv,
train_emotion_more.csv - sentences written for the evaluators, never data/emotion_prompts.csv or
data/generation_prompts.csv) and label_map.json,
augments every sentence deterministically so generated-style fragments are covered (lower-case without
final punctuation, a truncated prefix, a neutral lead-in, a neutral sentence appended), encodes with
the frozen MiniLM encoder, chooses the L2 strength by 5-fold cross-validation grouped by source
sentence (the validation set is not used), fits on everything and writes
data/evaluators/heads/{sentiment,politeness,emotion}.safetensors and data/evaluators/thresholds.json
(per-label thresholds for the emotion head, F1-optimal on the cross-validated predictions).

Every head records `training_data_sha256` (training_data_hash(): the bytes of every training file,
label_map.json and AUGMENT_VERSION) in its metadata; the scoring model id contains the head file's
hash, so scores of a refitted head never mix with older ones, and tests/test_evaluator_training_data.py
fails when the training data changed but the committed heads were not refitted (no stale heads).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..storage import atomic_write_json, file_lock
from .encoder import get_encoder
from .heads import LinearHead, fit_linear_head
from .minilm import GOEMOTIONS_LABELS, PolitenessEvaluator, SentimentEvaluator
from .paths import data_dir, heads_dir

FORBIDDEN = ("emotion_prompts.csv", "generation_prompts.csv")
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3)
DEFAULT_FILES = ("train_emotion.csv", "train_politeness.csv")
AUGMENT_VERSION = "1"   # bump when augment() or the fitting below changes


def _shipped_bytes(path: Path) -> bytes:
    """The file's bytes, checked against the repository's digest when it is a shipped file."""
    from ..shipped import verify_shipped

    data = verify_shipped(path)
    return path.read_bytes() if data is None else data


def training_files(label_map: dict | None = None) -> list[str]:
    label_map = label_map if label_map is not None else json.loads(_shipped_bytes(data_dir() / "label_map.json"))
    files = list(label_map.get("files", DEFAULT_FILES))
    bad = [f for f in files if Path(f).name in FORBIDDEN]
    if bad:
        raise ValueError(f"label_map.json lists {bad}: the evaluators are never trained on the prompts claims judge")
    return files


def training_data_hash() -> str:
    """sha256 of what the heads are fitted from: every training file, label_map.json, AUGMENT_VERSION."""
    d = data_dir()
    h = hashlib.sha256(f"augment={AUGMENT_VERSION}\n".encode())
    h.update(_shipped_bytes(d / "label_map.json"))
    for name in training_files():
        h.update(f"\n{name}\n".encode())
        h.update(_shipped_bytes(d / name))
    return h.hexdigest()


def load_sentences() -> pd.DataFrame:
    d = data_dir()
    frames = [pd.read_csv(io.BytesIO(_shipped_bytes(d / name)))[["text", "label"]] for name in training_files()]
    df = pd.concat(frames, ignore_index=True)
    df["source"] = np.arange(len(df))
    return df


def augment(df: pd.DataFrame, aug: dict) -> pd.DataFrame:
    rows = []
    pre, suf = aug["prefixes"], aug["suffixes"]
    for i, r in enumerate(df.itertuples(index=False)):
        t = r.text
        low = re.sub(r"[.!?]+$", "", t.strip()).lower()
        words = low.split()
        variants = [t, low, pre[i % len(pre)] + t[0].lower() + t[1:], t + " " + suf[i % len(suf)]]
        if len(words) >= 6:
            variants.append(" ".join(words[: int(np.ceil(0.65 * len(words)))]))
        for v in variants:
            rows.append((v, r.label, r.source))
    return pd.DataFrame(rows, columns=["text", "label", "source"])


def _folds(sources: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    uniq = np.unique(sources)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(uniq)
    fold_of = {s: i % k for i, s in enumerate(perm)}
    return np.array([fold_of[s] for s in sources])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _cv_predict(X, Y, kind, l2, folds):
    k = Y.shape[1] if kind == "sigmoid" else int(Y.max()) + 1
    P = np.zeros((len(X), k))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        W, b = fit_linear_head(X[tr], Y[tr], kind, l2=l2)
        P[te] = LinearHead("cv", tuple(str(i) for i in range(k)), kind, W, b).predict(X[te])
    return P


def _macro_auc(P, Y, kind):
    k = P.shape[1]
    onehot = Y if kind == "sigmoid" else np.eye(k)[Y]
    return float(np.nanmean([_auc(P[onehot[:, j] > 0.5, j], P[onehot[:, j] < 0.5, j]) for j in range(k)]))


def fit_head(name, labels, kind, X, Y, sources, log):
    folds = _folds(sources)
    best = None
    for l2 in L2_GRID:
        P = _cv_predict(X, Y, kind, l2, folds)
        m = _macro_auc(P, Y, kind)
        log(f"  {name}: l2={l2:g} cv macro-AUC={m:.4f}")
        if best is None or m > best[1] + 1e-4:
            best = (l2, m, P)
    l2, m, P = best
    W, b = fit_linear_head(X, Y, kind, l2=l2)
    meta = {"l2": l2, "cv_macro_auc": round(m, 4), "n_train": int(len(X)), "n_sources": int(len(np.unique(sources))),
            "encoder": "sentence-transformers/all-MiniLM-L6-v2", "fit": "L-BFGS cross-entropy, balanced one-vs-rest for sigmoid"}
    return LinearHead(name, tuple(labels), kind, W, b, meta), P


def _fit_emotion(data: pd.DataFrame, X: np.ndarray, log, aliases: dict | None = None) -> dict[str, float]:
    """28 one-vs-rest sigmoids on the emotion sentences, Platt-calibrated; returns thresholds.

    aliases (label_map.json "emotion_aliases"): training labels that count as a GoEmotions label for
    this head only, e.g. polite formulas without thanks or apology ("polite_formula") as `neutral`:
    hard negatives for gratitude and remorse that the politeness head still sees as polite."""
    labels = data["label"].replace(aliases or {})
    m = labels.isin(GOEMOTIONS_LABELS).to_numpy()
    Y = np.stack([(labels[m] == lab).to_numpy().astype(float) for lab in GOEMOTIONS_LABELS], 1)
    head, P = fit_head("emotion", GOEMOTIONS_LABELS, "sigmoid", X[m], Y, data["source"][m].to_numpy(), log)
    # Calibration: the balanced fit puts every label's 0.5 at equal odds, which over-scores
    # background text. A per-label Platt scaling (a_j > 0, c_j), fitted on the cross-validated
    # logits against the true labels (training-set label frequencies), turns each label's score
    # into a calibrated probability; being monotone it leaves every per-label ranking (AUC) as it
    # was. It is folded into the head: W_j <- a_j W_j, b_j <- a_j b_j + c_j.
    Z = np.log(np.clip(P, 1e-9, 1 - 1e-9) / np.clip(1 - P, 1e-9, 1))
    platt = {}
    for j, lab in enumerate(GOEMOTIONS_LABELS):
        a, c = fit_linear_head(Z[:, [j]], Y[:, [j]], "sigmoid", l2=0.0, balanced=False)
        a, c = float(a[0, 0]), float(c[0])
        if a <= 0:
            raise RuntimeError(f"Platt scaling of {lab} is not monotone increasing (a={a})")
        head.W[j] = head.W[j] * a
        head.b[j] = head.b[j] * a + c
        P[:, j] = 1 / (1 + np.exp(-(a * Z[:, j] + c)))
        platt[lab] = [round(a, 4), round(c, 4)]
    head.meta["platt"] = platt
    head.meta["calibration"] = "balanced one-vs-rest fit, then per-label Platt scaling on 5-fold CV logits"
    head.meta["training_data_sha256"] = training_data_hash()
    head.save(heads_dir() / "emotion.safetensors")
    thresholds = {}
    for j, lab in enumerate(GOEMOTIONS_LABELS):
        best_t, best_f = 0.5, -1.0
        for t in np.linspace(0.02, 0.95, 94):
            pred = P[:, j] >= t
            tp = float((pred & (Y[:, j] > 0.5)).sum())
            f1 = 2 * tp / (pred.sum() + (Y[:, j] > 0.5).sum() + 1e-9)
            if f1 > best_f:
                best_t, best_f = float(t), f1
        thresholds[lab] = round(best_t, 3)
    return thresholds


def _fit_softmax(name, labels, groups, data, X, log) -> None:
    cls_of = {src: labels.index(cls) for cls, srcs in groups.items() for src in srcs}
    m = data["label"].isin(list(cls_of)).to_numpy()
    y = data["label"][m].map(cls_of).to_numpy().astype(int)
    counts = np.bincount(y, minlength=len(labels)).astype(float)
    w = (len(y) / (len(labels) * counts))[y]  # equal total weight per class
    folds = _folds(data["source"][m].to_numpy())
    best = None
    for l2 in L2_GRID:
        Pc = np.zeros((len(y), len(labels)))
        for f in np.unique(folds):
            tr, te = folds != f, folds == f
            W, b = fit_linear_head(X[m][tr], y[tr], "softmax", l2=l2, sample_weight=w[tr])
            Pc[te] = LinearHead("cv", labels, "softmax", W, b).predict(X[m][te])
        s = Pc[:, 2] - Pc[:, 0]  # separation of the summary score (last class vs first)
        auc = _auc(s[y == 2], s[y == 0])
        log(f"  {name}: l2={l2:g} cv AUC(summary, {labels[2]} vs {labels[0]})={auc:.4f}")
        if best is None or auc > best[1] + 1e-4:
            best = (l2, auc)
    W, b = fit_linear_head(X[m], y, "softmax", l2=best[0], sample_weight=w)
    meta = {"l2": best[0], "cv_summary_auc": round(best[1], 4), "n_train": int(m.sum()),
            "classes": {k: v for k, v in groups.items() if not k.startswith("_")},
            "encoder": "sentence-transformers/all-MiniLM-L6-v2", "fit": "L-BFGS class-balanced softmax",
            "training_data_sha256": training_data_hash()}
    LinearHead(name, labels, "softmax", W, b, meta).save(heads_dir() / f"{name}.safetensors")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=("emotion", "sentiment", "politeness"), action="append",
                    help="refit only these heads (default: all)")
    args = ap.parse_args(argv)
    only = set(args.only or ("emotion", "sentiment", "politeness"))
    log = print
    d = data_dir()
    label_map = json.loads(_shipped_bytes(d / "label_map.json"))
    sent = load_sentences()
    data = augment(sent, label_map["augment"])
    log(f"{len(sent)} sentences -> {len(data)} training texts; encoding...")
    X = get_encoder().encode(data["text"].tolist(), batch_size=64)
    heads_dir().mkdir(parents=True, exist_ok=True)

    with file_lock(heads_dir() / ".train"):
        if "emotion" in only:
            thresholds = _fit_emotion(data, X, log, label_map.get("emotion_aliases"))
            atomic_write_json(d / "thresholds.json", {
                "_doc": "Per-label decision thresholds for the emotion head (F1-optimal on 5-fold cross-validated, "
                        "Platt-calibrated predictions over the training sentences; the validation set was not used). "
                        "Use them only for yes/no label decisions; the scores themselves are calibrated probabilities.",
                "emotion": thresholds,
                "training_data_sha256": training_data_hash(),
            })
        for name, labels in (("sentiment", SentimentEvaluator.labels), ("politeness", PolitenessEvaluator.labels)):
            if name in only:
                _fit_softmax(name, labels, label_map[name], data, X, log)
        # the heads and thresholds just written are the shipped ones now: record their digests
        from ..shipped import DIGEST_LIST, record_digests

        if (d.parent / DIGEST_LIST).is_file():
            record_digests(d.parent, [*heads_dir().glob("*.safetensors"), d / "thresholds.json"])
    log("wrote heads to", heads_dir())


if __name__ == "__main__":
    main()
