"""Exact growth table and specificity (emocheck.heads.exact_growth) end to end on a tiny model: every
cell present, the n = 8-style rows equal the claims' exact tables, the own set's effect is read from
the same prompts as the other emotions' sets, cached by the storage rule."""
import numpy as np
import pandas as pd
import torch

import emocheck.heads.experiment as experiment
import emocheck.models.registry as registry
from emocheck.heads import exact_growth
from emocheck.heads.growth import EXACT_KINDS, exact, exact_arrays
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model

EMOTIONS = list(experiment.EMOTIONS)
TEXTS = ["Thank you so much!", "I am furious about this.", "I am so sorry.", "The bus leaves at six."]


class _Screen:
    n_heads = 4

    def top_heads(self, emotion, n):
        order = {"gratitude": [(2, 0), (1, 3), (2, 1), (0, 0)], "anger": [(2, 1), (0, 1), (2, 0), (1, 1)],
                 "apology": [(1, 2), (2, 0), (0, 3), (2, 2)]}[emotion]
        return order[:n]


class _Vectors:
    meta = {"key": "vk"}

    def vector(self, emotion, layer, **kw):
        return torch.randn(64, generator=torch.Generator().manual_seed(EMOTIONS.index(emotion)))


class _Reps:
    def __init__(self, n=24):
        labels = np.array(EMOTIONS + ["neutral"])[np.arange(n) % 4]
        self.prompts = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "text": [TEXTS[i % 4] + f" #{i}" for i in range(n)],
                                     "emotion": labels, "split": np.where(np.arange(n) % 3 == 0, "held_out", "train")})
        self.vectors = _Vectors()

    def rows(self, emotion=None, split_name=None):
        return ((self.prompts.emotion == emotion) & (self.prompts.split == split_name)).to_numpy()


def _fake_screen(monkeypatch, seed: int):
    """A tiny model, fake prompts and random head scores behind a patched `screen` and `load_model`;
    returns (model, reps, scores, loads) where loads counts model loads."""
    m = tiny_model("llama", n_layers=3, seed=2)
    reps = _Reps()
    g = torch.Generator().manual_seed(seed)
    scores = {"z_last": torch.randn(len(reps.prompts), 3, 4, m.head_dim, generator=g),
              "direct": torch.randn(len(reps.prompts), 3, 4, len(EMOTIONS), generator=g)}
    monkeypatch.setattr(experiment, "screen", lambda name, profile, progress=False: (_Screen(), scores, reps))
    loads = []
    monkeypatch.setattr(registry, "load_model", lambda name: loads.append(1) or m)
    return m, reps, scores, loads


def test_exact_growth_and_specificity(monkeypatch, results_tmp):
    m, reps, scores, loads = _fake_screen(monkeypatch, 0)
    profile = get_profile("smoke")
    table = exact_growth.exact_growth_table("tiny", profile, n_values=(2, 4))
    assert len(table) == len(EMOTIONS) * len(EXACT_KINDS) * 2
    assert np.isfinite(table[["observed", "null_mean", "null_sd"]].to_numpy()).all()
    assert (table["rank"] >= 1).all() and (table["mc_p"] > 0).all()
    # each row is the claims' exact table (same sets, prompts and cache)
    row = table[(table.emotion == "anger") & (table.kind == "ablate_resample") & (table.n == 2)].iloc[0]
    t, c = exact_arrays(exact("tiny", profile, "anger", "ablate_resample", 2))
    assert row.observed == t.mean() and row.null_mean == c.mean(0).mean()
    # zero, mean and resample are different interventions on the same sets and prompts
    a = {k: table[(table.emotion == "gratitude") & (table.n == 4) & (table.kind == k)].iloc[0] for k in EXACT_KINDS}
    assert a["ablate"].heads == a["ablate_zero"].heads == a["ablate_resample"].heads
    assert len({round(a[k].observed, 6) for k in ("ablate", "ablate_zero", "ablate_resample")}) == 3
    n_loads = len(loads)
    exact_growth.exact_growth_table("tiny", profile, n_values=(2, 4))          # all cached
    assert len(loads) == n_loads
    spec = exact_growth.specificity("tiny", profile, "gratitude", n=4)
    own, other, ids = exact_growth.specificity_arrays(spec, "gratitude", "anger")
    assert len(ids) == reps.rows("gratitude", "held_out").sum() and not np.allclose(own, other)
    # the own set's column equals the mean-ablation effect of that set on those prompts
    from emocheck.heads.growth import _final_unit, exact_effects
    src = np.flatnonzero(reps.rows("neutral", "held_out"))
    texts = reps.prompts.set_index("id").loc[ids, "text"].tolist()
    want = exact_effects(m, texts, [tuple(_Screen().top_heads("gratitude", 4))], scores["z_last"][src].double().mean(0).float(),
                         _final_unit(reps, "gratitude", 2), "ablate")[0]
    np.testing.assert_allclose(own, want, rtol=1e-6, atol=1e-7)
    exact_growth.plot_specificity({"gratitude": spec}, results_tmp / "s.png")
    assert (results_tmp / "s.png").exists()


def test_batched_grid_equals_one_request_at_a_time(monkeypatch, results_tmp):
    """exact_many runs every table's rows of a prompt in one batch (mixed interventions, head sets and
    values); each table must equal exact_effects on that table alone, kind by kind."""
    from emocheck.heads.growth import _exact_plan, _exact_values, exact_effects, exact_many

    m, reps, scores, _ = _fake_screen(monkeypatch, 1)
    profile = get_profile("smoke")
    requests = [(e, k, n) for e in EMOTIONS for k in EXACT_KINDS for n in (1, 4)]
    tables = exact_many("tiny", profile, requests)
    for (e, k, n), df in zip(requests, tables):
        plan = _exact_plan(_Screen(), scores, reps, profile, "tiny", e, k, n)
        z, _, u = _exact_values(plan, scores, reps, 2)
        texts = reps.prompts["text"].to_numpy()[plan["sample"]].tolist()
        want = exact_effects(m, texts, plan["sets"], z, u, k)              # [sets, prompts], one request alone
        got = df.pivot(index="set", columns="prompt_id", values="effect")
        got = got[reps.prompts["id"].to_numpy()[plan["sample"]]].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{e} {k} n={n}")
        assert np.abs(want).max() > 0
    # a second call reads every table back from its file
    again = exact_many("tiny", profile, requests)
    for a, b in zip(tables, again):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)
