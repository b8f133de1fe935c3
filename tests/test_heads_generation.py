"""The head patch-in generation design (emocheck.heads.generation): a fresh random set per prompt with
the chosen set's layer profile, the held-out means as values (the ranking saw the training prompts), one cached samples table end to end."""
from collections import Counter

import numpy as np
import pandas as pd
import torch

import emocheck.heads.experiment as experiment
import emocheck.models.registry as registry
import emocheck.patching.running as running
from emocheck.heads import generation
from emocheck.heads.nulls import layer_counts
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model

EMOTIONS = ["gratitude", "anger", "apology"]


class _Screen:
    n_heads = 4

    def top_heads(self, emotion, n):
        order = {"gratitude": [(2, 0), (2, 1), (1, 3), (1, 2), (0, 0), (2, 3), (0, 2), (1, 0)],
                 "anger": [(2, 1), (2, 0), (1, 3), (0, 1), (1, 1), (2, 2), (0, 3), (1, 0)],
                 "apology": [(2, 2), (2, 0), (1, 3), (0, 0), (1, 2), (2, 1), (0, 1), (0, 2)]}[emotion]
        return order[:n]


class _Reps:
    def __init__(self, n=30):
        self.labels = np.array((EMOTIONS + ["neutral"]) * (n // 4 + 1))[:n]
        self.split = np.where(np.arange(n) % 3 == 0, "held_out", "train")
        self.vectors = type("V", (), {"meta": {"key": "vk"}})()

    def rows(self, emotion=None, split_name=None):
        return (self.labels == emotion) & (self.split == split_name)


def _scores(n=30, hd=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"z_last": torch.randn(n, 3, 4, hd, generator=g) * 4}


def test_design_fresh_random_set_per_prompt():
    reps, scores = _Reps(), _scores()
    prompts = pd.DataFrame({"id": [f"g{i}" for i in range(12)], "text": ["x"] * 12})
    rows, values = generation.design(_Screen(), scores, reps, EMOTIONS, prompts, seed=5)
    assert len(rows) == 12 * (1 + 2 * len(EMOTIONS))
    for e in EMOTIONS:
        chosen = tuple(_Screen().top_heads(e, 8))
        top = [r for r in rows if r["condition"] == f"top:{e}"]
        rnd = [r for r in rows if r["condition"] == f"random:{e}"]
        assert all(r["heads"] == chosen for r in top)
        assert all(layer_counts(r["heads"]) == layer_counts(chosen) for r in rnd)
        assert len({r["heads"] for r in rnd}) > 6            # fresh sets, not one set reused
        mean = scores["z_last"][np.flatnonzero(reps.rows(e, "held_out"))].double().mean(0).float()
        for i, r in enumerate(rows):
            if r["emotion"] == e:
                torch.testing.assert_close(torch.stack([values[layer][i] for layer in range(3)]), mean)
    assert all(not r["heads"] for r in rows if r["kind"] == "baseline")
    # seeded by (seed, emotion, prompt id): the same set whatever the order or number of prompts
    again, _ = generation.design(_Screen(), scores, reps, EMOTIONS, prompts.iloc[::-1].head(5), seed=5)
    by = {(r["condition"], r["sample_id"]): r["heads"] for r in rows}
    assert all(by[(r["condition"], r["sample_id"])] == r["heads"] for r in again)
    other, _ = generation.design(_Screen(), scores, reps, EMOTIONS, prompts, seed=6)
    assert Counter(r["heads"] == o["heads"] for r, o in zip(rows, other) if r["kind"] == "random")[False] > 10


def test_run_generation_end_to_end_cached(monkeypatch, results_tmp):
    m = tiny_model("llama", n_layers=3, seed=1)
    reps, scores = _Reps(), _scores(hd=m.head_dim)
    monkeypatch.setattr(experiment, "screen", lambda name, profile, progress=False: (_Screen(), scores, reps))
    monkeypatch.setattr(registry, "load_model", lambda name: m)
    scored = []

    def fake_scores(texts, columns=None):
        scored.append(len(texts))
        return pd.DataFrame({c: [float(len(t)) for t in texts] for c in running.SCORE_COLUMNS}).assign(
            empty=[not t.strip() for t in texts])

    monkeypatch.setattr(running, "score_all", fake_scores)
    profile = get_profile("smoke")
    df = generation.run_generation("tiny", profile)
    n = generation.settings(profile)["judged_prompts"]
    assert len(df) == n * 7 and set(df.condition) == {"baseline"} | {f"{k}:{e}" for e in EMOTIONS for k in ("top", "random")}
    assert np.isfinite(df["nll"]).all() and {"emo_gratitude", "rep3", "topic"} <= set(df)
    d = generation.out_dir(profile, "tiny") / "generation"
    assert (d / "scores.png").exists() and (d / "summary.csv").exists()
    again = generation.run_generation("tiny", profile)           # served from the verified cache
    assert scored == [len(df)]
    pd.testing.assert_frame_equal(df, again)
    # the patch reaches the text: some top rows differ from their prompt's baseline
    base = df[df.kind == "baseline"].set_index("sample_id")["text"]
    top = df[df.condition == "top:gratitude"].set_index("sample_id")["text"]
    assert (top != base.reindex(top.index)).any()
