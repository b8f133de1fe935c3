"""The screening sample: a seeded per-class sample that keeps every prompt's split label and order."""
import numpy as np
import pandas as pd

from emocheck.heads.experiment import SCREEN_PROMPTS, screen_sample
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
    cap = SCREEN_PROMPTS["ci"]
    assert s.prompts.emotion.value_counts().to_dict() == {"anger": cap, "gratitude": cap, "neutral": cap}
    merged = s.prompts.merge(reps.prompts, on="id", suffixes=("", "_orig"))
    assert (merged.split == merged.split_orig).all() and (merged.emotion == merged.emotion_orig).all()
    assert list(s.prompts.id) == sorted(s.prompts.id, key=lambda x: int(x[1:]))       # original order
    assert list(screen_sample(reps, profile).prompts.id) == list(s.prompts.id)        # seeded
    assert s.rows("neutral", "held_out").sum() == ((s.prompts.emotion == "neutral") & (s.prompts.split == "held_out")).sum()
    full = screen_sample(reps, get_profile("full"))
    assert len(full.prompts) == 300
