"""The instrument validity table: DeLong AUC intervals against scikit-learn and a bootstrap, coverage by
simulation, the rows and contrasts it builds, and its place in report.md / report.html."""
import os
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from emocheck import stats
from emocheck.evaluators.base import Evaluator
from emocheck.evaluators.validity import (VALIDITY_FILE, auc_delong, instrument_validity, read_session_validity,
                                          validity_html, validity_markdown, validity_rows, write_validity)


def test_delong_auc_matches_sklearn_and_its_interval_matches_the_bootstrap():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1, 120), rng.normal(0, 1.3, 200)
    auc, se, lo, hi = auc_delong(pos, neg)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(120), np.zeros(200)], np.r_[pos, neg]))
    blo, bhi = stats.auc_ci(pos, neg, n_resamples=4000, seed=1)
    assert lo == pytest.approx(blo, abs=0.012) and hi == pytest.approx(bhi, abs=0.012)
    assert lo < auc < hi and hi - lo == pytest.approx(2 * 1.959964 * se)


def test_delong_interval_covers_the_true_auc():
    """True AUC of N(1, 1) vs N(0, 1) is Phi(1 / sqrt 2) = 0.760; 400 simulations at 60 vs 90: coverage of
    the 95% interval within 0.95 +- 3 Monte Carlo SE."""
    from scipy.stats import norm

    truth = norm.cdf(1 / np.sqrt(2))
    rng = np.random.default_rng(1)
    reps = 400
    hits = sum(lo <= truth <= hi for lo, hi in
               (auc_delong(rng.normal(1, 1, 60), rng.normal(0, 1, 90))[2:] for _ in range(reps)))
    assert abs(hits / reps - 0.95) < 3 * np.sqrt(0.95 * 0.05 / reps), hits / reps


class _Fake(Evaluator):
    """Scores = the count of a word in the text (deterministic, no model)."""

    dimension, multi_label, backend, version = "emotion", True, "fake", "1"

    def __init__(self, name, labels, words, summary_label=None):
        self.name, self.labels, self.words, self.model_id = name, tuple(labels), words, f"fake:{name}"
        self.summary = "score" if summary_label else None
        self._summary_label = summary_label

    def _score_batch(self, texts, use_cache=True):
        return np.array([[t.lower().count(self.words[lab]) for lab in self.labels] for t in texts], dtype=float)

    def _summarise(self, s):
        return s[:, self.labels.index(self._summary_label)] if self._summary_label else None


def _prompts():
    rows = [("thanks so much", "gratitude"), ("thank you kindly", "gratitude"), ("thanks thanks", "gratitude"),
            ("I am furious", "anger"), ("so furious", "anger"), ("furious and mad", "anger"),
            ("sorry about that", "apology"), ("so sorry", "apology"), ("sorry, my fault", "apology"),
            ("the bus is late", "neutral"), ("meeting at noon", "neutral"), ("thanks in advance", "neutral")]
    return pd.DataFrame(rows, columns=["text", "emotion"])


def _fakes():
    emo = _Fake("emotion", ["gratitude", "anger", "remorse"], {"gratitude": "thank", "anger": "furious", "remorse": "sorry"})
    pol = _Fake("sentiment", ["positive"], {"positive": "thank"}, summary_label="positive")
    return {"emotion": emo, "sentiment": pol}


def test_table_rows_contrasts_and_orientation():
    table = instrument_validity(_prompts(), evaluators=_fakes(), instruments={"emotion", "sentiment"})
    g = table[(table.instrument == "emotion") & (table.column == "gratitude")].set_index("contrast")
    assert list(g.index) == ["vs neutral", "vs anger", "vs apology", "vs other emotions"]
    assert g.loc["vs anger", "auc"] == 1.0 and g.loc["vs neutral", "auc"] == pytest.approx(8 / 9)   # "thanks in advance" (neutral) ties two of 9 pairs
    assert g.loc["vs other emotions", "n_control"] == 6 and g.loc["vs neutral", "kind"] == "vs_neutral"
    # sentiment is expected LOWER for anger and apology, against neutral and gratitude only
    a = table[(table.instrument == "sentiment") & (table.target == "anger")].set_index("contrast")
    assert list(a.index) == ["vs neutral", "vs gratitude"] and a.loc["vs gratitude", "auc"] == 1.0
    assert set(table["model_id"]) == {"fake:emotion", "fake:sentiment"}
    assert table["meets_aim"].dtype == bool and (table["ci_low"] <= table["auc"]).all()


def test_rows_follow_the_datasets_emotions():
    rows = validity_rows(["joy", "fear", "neutral"])
    assert {(r.instrument, r.column) for r in rows} == {("emotion", "joy"), ("emotion", "fear"),
                                                          ("emotion-margin", "joy"), ("emotion-margin", "fear"),
                                                          ("emotion-nrc", "joy"), ("emotion-nrc", "fear")}


def test_report_shows_this_sessions_table_only(tmp_path):
    from emocheck.plugin import report as rep

    table = instrument_validity(_prompts(), evaluators=_fakes(), instruments={"emotion"})
    started = time.time() - 1
    write_validity(tmp_path, table, {"dataset_hash": "x"})
    got = read_session_validity(tmp_path, started)
    pd.testing.assert_frame_equal(got, table, check_dtype=False)
    md = "\n".join(validity_markdown(table))
    assert "## Instrument validity" in md and "| emotion | gratitude | gratitude |" in md
    assert "id='validity'" in validity_html(table)
    t, c = np.linspace(0, 2, 20), np.linspace(-1, 1, 20)
    result = {"claim_id": "h/test_v.py::test_x", "short_id": "test_x", "module": "h/test_v.py", "family": "fam",
              "family_size": 1, "statement": "a statement", "model": "m", "params": {}, "status": "ok", "error": None,
              "metrics": {}, "settings": {"paired": False, "alternative": "greater", "min_d": 0.0, "alpha": 0.05,
                                          "ci_method": "analytic", "n_resamples": 200, "seed": 0},
              "comparison": stats.compare(t, c, paired=False, alternative="greater", min_d=0.0).to_dict(),
              "samples": {"treated": list(t), "control": list(c), "sample_ids": None}}
    rows, fams = rep.finalize([result], "holm")
    paths = rep.write_statistics([result], rows, fams, {"correction": "holm", "alpha": 0.05}, tmp_path, session_started=started)
    assert "instrument_validity" in paths
    assert "Instrument validity" in paths["report"].read_text() and "id='validity'" in paths["html"].read_text()
    # a table an earlier session left is neither shown nor kept
    old = time.time() - 3600
    os.utime(tmp_path / VALIDITY_FILE, (old, old))
    assert read_session_validity(tmp_path, started) is None
    paths = rep.write_statistics([result], rows, fams, {"correction": "holm", "alpha": 0.05}, tmp_path, session_started=started)
    assert "instrument_validity" not in paths and "Instrument validity" not in paths["report"].read_text()
    assert not (tmp_path / VALIDITY_FILE).exists()
