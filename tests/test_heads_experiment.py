"""The screening sample: a seeded per-class sample that keeps every prompt's split label and order."""
import numpy as np
import pandas as pd

from emocheck.heads.experiment import screen_cap, screen_sample
from emocheck.profiles import get_profile


class _Reps:
    model = "toy"
    vectors = None

    def __init__(self):
        labels = np.repeat(["anger", "gratitude", "neutral"], 100)
        self.prompts = pd.DataFrame({"id": [f"p{i}" for i in range(300)], "emotion": labels,
                                     "split": np.where(np.arange(300) % 10 < 3, "held_out", "train")})


def test_screen_sample_is_per_class_seeded_and_keeps_splits():
    reps = _Reps()
    profile = get_profile("ci")
    s = screen_sample(reps, profile)
    cap = screen_cap(profile)
    assert s.prompts.emotion.value_counts().to_dict() == {"anger": cap, "gratitude": cap, "neutral": cap}
    merged = s.prompts.merge(reps.prompts, on="id", suffixes=("", "_orig"))
    assert (merged.split == merged.split_orig).all() and (merged.emotion == merged.emotion_orig).all()
    assert list(s.prompts.id) == sorted(s.prompts.id, key=lambda x: int(x[1:]))       # original order
    assert list(screen_sample(reps, profile).prompts.id) == list(s.prompts.id)        # seeded
    assert s.rows("neutral", "held_out").sum() == ((s.prompts.emotion == "neutral") & (s.prompts.split == "held_out")).sum()
    full = screen_sample(reps, get_profile("full"))
    assert len(full.prompts) == 300


def test_screen_cache_is_verified_and_rebuilt_when_damaged(monkeypatch, results_tmp):
    """The per-prompt screen cache goes through the one storage rule: served when intact, rebuilt (not
    trusted, not a crash) when its bytes are damaged or its key is stale."""
    import torch

    import emocheck.heads.experiment as ex
    import emocheck.models.registry as registry

    calls = []

    def fake_scores(loaded, reps, emotions, batch_size, progress):
        calls.append(1)
        return {"direct": torch.arange(12, dtype=torch.float32).reshape(3, 4) + len(calls)}

    monkeypatch.setattr(ex, "per_prompt_scores", fake_scores)
    monkeypatch.setattr(registry, "load_model", lambda name: None)
    reps = _Reps()
    reps.vectors = type("V", (), {"meta": {"key": "vec-1"}})()
    profile = get_profile("ci")
    first = ex.cached_per_prompt_scores("toy", profile, reps, progress=False)
    again = ex.cached_per_prompt_scores("toy", profile, reps, progress=False)
    assert len(calls) == 1 and torch.equal(first["direct"], again["direct"])
    path = ex.scores_dir(profile, "toy") / "per_prompt.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF                                  # flip bits inside the tensor data
    path.write_bytes(bytes(raw))
    rebuilt = ex.cached_per_prompt_scores("toy", profile, reps, progress=False)
    assert len(calls) == 2 and torch.equal(rebuilt["direct"], first["direct"] + 1)
    reps.vectors.meta["key"] = "vec-2"               # other vectors: stale, rebuilt
    ex.cached_per_prompt_scores("toy", profile, reps, progress=False)
    assert len(calls) == 3
