"""Screening: per-prompt head scores on a tiny model equal their definitions; per-head d and its
bootstrap CI match the stats module; a planted head is found on training prompts and judged held out."""
import numpy as np
import pandas as pd
import pytest
import torch

from emocheck import stats
from emocheck.heads.access import read_heads
from emocheck.heads.screening import (MEASURES, _boot_d, _d, per_prompt_scores, score_heads, tokenize_with_spans,
                                      plot_heatmaps)
from emocheck.testing import tiny_model

TEXTS = ["Huge thanks to you all!", "The van is three stops away.", "I am sorry for the delay.", "Ships Monday."]
TRIGGERS = ["Huge thanks", "three stops", "I am sorry", "Monday"]


class _Vectors:
    def __init__(self, d, n_layers, emotions, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.v = {(e, L, k): torch.randn(d, generator=g) for e in emotions for L in range(n_layers)
                  for k in ("vs_neutral", "specific")}

    def vector(self, e, layer, kind="vs_neutral", site="hook_resid_post", position="last"):
        return self.v[(e, layer, kind)]


class _Reps:
    def __init__(self, loaded, emotions):
        self.prompts = pd.DataFrame({"text": TEXTS, "trigger": TRIGGERS})
        self.vectors = _Vectors(loaded.d_model, loaded.n_layers, emotions)


def test_trigger_span_covers_the_trigger_characters():
    loaded = tiny_model("llama")
    ids, mask, last, span = tokenize_with_spans(loaded, TEXTS, TRIGGERS)
    for i, trig in enumerate(TRIGGERS):
        toks = ids[i][span[i]].tolist()
        assert loaded.tokenizer.decode(toks).replace(" ", "") == trig.replace(" ", "")
        assert int(last[i]) == int(mask[i].sum()) - 1


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_per_prompt_scores_equal_their_definitions(family):
    loaded = tiny_model(family)
    emotions = ["gratitude", "apology"]
    reps = _Reps(loaded, emotions)
    s = per_prompt_scores(loaded, reps, emotions, batch_size=3, progress=False)
    assert s["write"].shape == (4, loaded.n_layers, loaded.n_heads, 2)
    assert s["trigger"].shape == (4, loaded.n_layers, loaded.n_heads)
    ids, mask, last, span = tokenize_with_spans(loaded, TEXTS, TRIGGERS)
    r = read_heads(loaded, ids, mask, last, pattern=True)
    final = loaded.n_layers - 1
    for layer in range(loaded.n_layers):
        for ei, e in enumerate(emotions):
            u = reps.vectors.vector(e, layer)
            torch.testing.assert_close(s["write"][:, layer, :, ei], r.write_projection(layer, u), rtol=1e-4, atol=1e-5)
            us = reps.vectors.vector(e, layer, "specific")
            torch.testing.assert_close(s["specific"][:, layer, :, ei], r.write_projection(layer, us), rtol=1e-4, atol=1e-5)
            uf = reps.vectors.vector(e, final)
            torch.testing.assert_close(s["direct"][:, layer, :, ei], r.write_projection(layer, uf), rtol=1e-4, atol=1e-5)
        want = torch.stack([r.pattern[layer][i][:, span[i]].sum(-1) for i in range(4)])
        torch.testing.assert_close(s["trigger"][:, layer], want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s["z_last"][:, layer], r.z[layer])


def test_vectorised_d_and_bootstrap_match_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(0.8, 1.0, (40, 5))
    y = rng.normal(0.0, 1.5, (50, 5))
    d = _d(x, y)
    for j in range(5):
        assert d[j] == pytest.approx(stats.cohens_d(x[:, j], y[:, j]), rel=1e-10)
    lo, hi = _boot_d(x, y, 2000, seed=1)
    assert (lo < d).all() and (d < hi).all()
    # percentile CI width close to the analytic one (noncentral-t based) for column 0
    ci = stats.cohens_d_ci(x[:, 0], y[:, 0])
    width = (ci[1] - ci[0]) if isinstance(ci, tuple) else (ci.high - ci.low)
    assert abs((hi[0] - lo[0]) - width) < 0.25 * width


def _planted(n_per=100, n_layers=3, n_heads=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["gratitude"] * n_per + ["neutral"] * n_per)
    split = np.where(rng.random(2 * n_per) < 0.3, "held_out", "train")
    shape = (2 * n_per, n_layers, n_heads)
    scores = {m: rng.normal(size=shape + ((1,) if m != "trigger" else ())) for m in MEASURES}
    scores["direct"][labels == "gratitude", 2, 1, 0] += 1.5       # the planted head
    scores["trigger"][labels == "gratitude", 0, 3] += 1.0
    return {m: torch.as_tensor(v) for m, v in scores.items()}, pd.DataFrame({"emotion": labels, "split": split})


def test_planted_head_is_found_and_held_out_d_is_honest(tmp_path):
    scores, prompts = _planted()
    screen = score_heads(scores, prompts, ["gratitude"], "toy", n_boot=500)
    assert screen.top_heads("gratitude", 1) == [(2, 1)]
    row = screen.ranked("gratitude").iloc[0]
    assert row.held_out_d_low > 0.5 and row.held_out_d_low < row.held_out_d < row.held_out_d_high
    trig = screen.ranked("gratitude", "trigger").iloc[0]
    assert (trig["layer"], trig["head"]) == (0, 3)
    # null heads: held-out d near 0 (|d| < 0.8 for 11 null heads at n ~ 30 + 30)
    nulls = screen.table[(screen.table.measure == "direct") & ~((screen.table["layer"] == 2) & (screen.table["head"] == 1))]
    assert nulls.held_out_d.abs().max() < 0.8
    plot_heatmaps(screen, "gratitude", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
