"""The thin phase-5 entry point: profile settings, split through the profile, summary tables."""
import numpy as np
import pandas as pd
import pytest

from emocheck.errors import ConfigError
from emocheck.patching.experiment import settings, split_generation_prompts, write_summary
from emocheck.profiles import get_profile


def _prompts(n):
    return pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)], "text": ["x"] * n,
                         "topic": [f"t{i % 5}" for i in range(n)], "genre": [f"g{i % 3}" for i in range(n)]})


def test_split_generation_prompts_disjoint_and_sized():
    judged, tuning = split_generation_prompts(get_profile("smoke"), _prompts(30))
    assert len(judged) == 8 and len(tuning) == settings(get_profile("smoke"))["tuning_prompts"]
    assert not set(judged["id"]) & set(tuning["id"]) and tuning["topic"].nunique() == 4
    with pytest.raises(ConfigError, match="tuning"):
        split_generation_prompts(get_profile("full"), _prompts(30))


def test_write_summary_counts_empty(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for cond, kind in (("baseline", "baseline"), ("gratitude", "emotion")):
        for i in range(6):
            text = "" if (cond == "gratitude" and i < 2) else "some words here"
            rows.append({"sample_id": f"p{i}", "condition": cond, "kind": kind, "emotion": "" if kind == "baseline" else cond,
                         "text": text, "empty": not text, "politeness": np.nan if not text else rng.normal(),
                         "sentiment": rng.normal(), "emo_remorse": rng.normal(), "nll": rng.normal(2, 0.1),
                         "ppl": 7.0, "distinct2": 1.0, "rep3": 0.0, "n_tokens": 5})
    summary = write_summary(pd.DataFrame(rows), tmp_path, "tiny")
    s = summary.set_index("condition")
    assert s.loc["gratitude", "n_empty"] == 2 and s.loc["baseline", "n_empty"] == 0
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "empty_counts.csv").exists()
    assert (tmp_path / "conditions.png").exists()
