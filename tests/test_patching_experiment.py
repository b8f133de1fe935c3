"""Conditions, controls, batching, caching, fluency adjustment and the selection rule (tiny models)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.patching.residual import PatchSpec, generate_patched
from emocheck.patching.experiment import (EMOTIONS, claim_conditions, paired_scores, random_directions,
                                          run_conditions, select_layer_alpha, split_generation_prompts,
                                          sweep_conditions, sweep_layers, sweep_table)
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model


class FakeVectors:
    def __init__(self, d=64, layers=(0, 1, 2), seed=0):
        g = torch.Generator().manual_seed(seed)
        self.layers, self.emotions = list(layers), list(EMOTIONS)
        shared = torch.randn(d, generator=g, dtype=torch.float64)
        self.v = {(e, l): shared + 0.5 * torch.randn(d, generator=g, dtype=torch.float64) for e in EMOTIONS for l in layers}

    def vector(self, emotion, layer, kind="vs_neutral", site="hook_resid_post", position="last"):
        v = self.v[(emotion, layer)]
        if kind == "specific":
            u = sum(self.v[(e, layer)] for e in EMOTIONS)
            u = u / u.norm()
            return v - (v @ u) * u
        return v.clone()


def test_random_directions_norm_seed():
    a = random_directions(64, 3, seed=10, norm=2.5)
    assert a.shape == (3, 64) and torch.allclose(a.norm(dim=1), torch.full((3,), 2.5, dtype=torch.float64))
    assert torch.equal(a, random_directions(64, 3, seed=10, norm=2.5))
    assert torch.equal(a[1], random_directions(64, 1, seed=11, norm=2.5)[0])   # draw k uses seed + k
    assert abs(float(a[0] @ a[1])) / 2.5**2 < 0.5


def test_claim_conditions_norms():
    vecs = FakeVectors()
    conds = claim_conditions(vecs, layer=1, alpha=2.0, site="hook_resid_post", n_random=3, seed=5)
    names = [c.name for c in conds]
    assert names[0] == "baseline" and float(conds[0].vector.abs().sum()) == 0
    assert len(conds) == 1 + 3 * (3 + 3 + 1)
    for e in EMOTIONS:
        n = float(vecs.vector(e, 1).norm())
        by = {c.name: c for c in conds}
        assert torch.allclose(by[e].vector, 2.0 * vecs.vector(e, 1))
        assert torch.allclose(by[f"neg:{e}"].vector, -by[e].vector)
        for name in (f"specific:{e}", "random0:" + e, "random2:" + e):
            assert by[name].vector.norm().item() == pytest.approx(2.0 * n)
        assert [by[f"random{k}:{e}"].seed for k in range(3)] == [5, 6, 7]
        sf = by[f"signflip:{e}"].vector
        assert torch.allclose(sf.abs(), by[e].vector.abs()) and not torch.allclose(sf, by[e].vector)


def test_split_generation_prompts_disjoint():
    df = pd.DataFrame({"id": [f"p{i}" for i in range(30)], "text": ["x"] * 30})
    judged, tuning = split_generation_prompts(get_profile("smoke"), df)
    assert len(judged) == 8 and len(tuning) == 4 and not set(judged["id"]) & set(tuning["id"])
    with pytest.raises(ConfigError, match="tuning"):
        split_generation_prompts(get_profile("full"), df)


def test_paired_scores_adjusts_for_fluency():
    rng = np.random.default_rng(0)
    n = 60
    f_t, f_c = rng.normal(1.0, 0.5, n), rng.normal(0.0, 0.1, n)
    eff = 0.3
    s_c = rng.normal(0, 0.2, n)
    s_t = s_c + eff - 0.8 * (f_t - f_c) + rng.normal(0, 0.05, n)
    rows = []
    for i in range(n):
        rows.append({"sample_id": f"gen-{i:03d}", "condition": "T", "politeness": s_t[i], "nll": f_t[i], "rep3": 0.0, "distinct2": 1.0})
        rows.append({"sample_id": f"gen-{i:03d}", "condition": "C", "politeness": s_c[i], "nll": f_c[i], "rep3": 0.1, "distinct2": 0.9})
    out = paired_scores(pd.DataFrame(rows), "T", ["C"], "politeness")
    m = out["metrics"]
    assert m["fluency_slope"] == pytest.approx(-0.8, abs=0.05)
    assert m["adjusted_mean_diff"] == pytest.approx(eff, abs=0.06)
    assert np.mean(out["treated"] - out["control"]) == pytest.approx(m["adjusted_mean_diff"])
    assert m["raw_mean_diff"] < 0 and m["rep3_diff"] == pytest.approx(-0.1)
    raw = paired_scores(pd.DataFrame(rows), "T", ["C"], "politeness", adjust=False)
    assert np.allclose(raw["treated"], s_t)


def test_selection_rule():
    rows = []
    for layer in (1, 2):
        for alpha in (1.0, 2.0, 4.0):
            for e in EMOTIONS:
                rows.append({"layer": layer, "alpha": alpha, "kind": "emotion", "emotion": e,
                             "median_dnll": 0.15 * alpha, "mean_drep3": 0.0,
                             "target_d_vs_random": alpha * (1 if layer == 2 else 0.5)})
            rows.append({"layer": layer, "alpha": alpha, "kind": "random", "emotion": "", "median_dnll": 0.15 * alpha,
                         "mean_drep3": 0.0, "target_d_vs_random": np.nan})
    sel = select_layer_alpha(pd.DataFrame(rows), n_layers=4)
    assert (sel["layer"], sel["alpha"]) == (2, 2.0)         # alpha 4 breaks fluency (0.6 > log 1.5)
    bad = pd.DataFrame(rows).assign(median_dnll=5.0)
    sel = select_layer_alpha(bad, n_layers=4)
    assert sel["alpha"] == 1.0 and "no fluent" in sel["reason"]
    assert sweep_layers(18, (0.25, 0.5, 0.75)) == [4, 8, 13]


def test_run_conditions_batched_cached(tmp_path):
    m = tiny_model("llama", n_layers=3, seed=1)
    vecs = FakeVectors(seed=1)
    prompts = pd.DataFrame({"id": ["a", "b", "c"], "text": ["hello there", "hi", "a longer prompt here"]})
    spec = PatchSpec(layers=(0,), max_new_tokens=6, window=(0, 3))
    conds = sweep_conditions(vecs, [1, 2], [1.0, 3.0], spec.site, seed=9)
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return generate_patched(*a, **k)

    out = run_conditions(m, prompts, conds, spec, tmp_path, rows_per_batch=8, evaluators=False, progress=False,
                         generate=counting)
    assert len(out) == len(conds) * 3 and set(out["sample_id"]) == {"a", "b", "c"}
    assert {"text", "nll", "ppl", "distinct2", "rep3", "layer", "alpha", "seed", "norm"} <= set(out.columns)
    assert not list((tmp_path / "parts").glob("*.parquet"))
    # Baseline rows equal a plain unpatched generation; emotion rows equal their own separate run.
    base = out[out["kind"] == "baseline"].set_index("sample_id")
    ref = generate_patched(m, prompts["text"].tolist(), spec.replace(layers=(1,)), None)
    for i, pid in enumerate(prompts["id"]):
        assert base.loc[pid, "new_token_ids"] == " ".join(map(str, ref.new_tokens[i, : ref.lengths[i]].tolist()))
    c = conds[3]
    alone = generate_patched(m, prompts["text"].tolist(), spec.replace(layers=(c.layer,), alpha=1.0), c.vector.float())
    got = out[out["condition"] == c.name].set_index("sample_id")
    for i, pid in enumerate(prompts["id"]):
        assert got.loc[pid, "text"] == alone.texts[i]
    n_calls = len(calls)
    again = run_conditions(m, prompts, conds, spec, tmp_path, rows_per_batch=8, evaluators=False, progress=False,
                           generate=counting)
    assert len(calls) == n_calls and again.equals(out)
    table = sweep_table(out)
    assert set(table["alpha"]) == {1.0, 3.0} and set(table["layer"]) == {1, 2}
