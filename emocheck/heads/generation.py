"""Head patch-in during generation (phase 6 (ii)): does writing the top emotion heads' mean output
into neutral generations move the evaluators, against random head sets, at what fluency cost?

Conditions on the same judged neutral generation prompts (the first rows of
data/generation_prompts.csv, as in phase 5), greedy: `baseline` (no patch); `top` (the top-n heads of
the emotion, ranked on training prompts, hook_z replaced by their mean over TRAINING emotion prompts
at the last token, during the generation window: step 0 = the last prompt token, then each new token);
`random{k}` (random sets of n heads with the same layer profile, the same values). Scored with the T2
evaluators (`emocheck.patching.experiment.score_all`) and the phase-5 fluency measures (continuation
NLL under the unpatched model, repetition). Writes
results/<profile>/patching/heads/<model>/generation_<emotion>.csv (one row per prompt x condition).

Not a claim yet: on the shared 2-core CPU this was built on, only a small run fitted (README says which).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck.heads.growth import CLAIM_N, out_dir
from emocheck.heads.nulls import random_head_sets
from emocheck.heads.specs import HeadPatchSpec
from emocheck.profiles import Profile
from emocheck.storage import atomic_write_dataframe
from emocheck import timing


@timing.timed("heads")
def run_generation(model_name: str, profile: Profile, emotion: str, *, n: int = CLAIM_N, n_prompts: int = 8,
                   n_random: int = 4, new_tokens: int = 20, window: tuple[int, int] = (0, 5),
                   progress: bool = False) -> pd.DataFrame:
    from emocheck.heads.experiment import screen
    from emocheck.heads.patching import generate_head_patched
    from emocheck.models.registry import load_model
    from emocheck.patching.experiment import score_all, split_generation_prompts
    from emocheck.patching.fluency import fluency_table
    from emocheck.patching.residual import PatchSpec, generate_plain

    screen_result, scores, reps = screen(model_name, profile, progress=progress)
    loaded = load_model(model_name)
    judged, _ = split_generation_prompts(profile)
    prompts = judged["text"].tolist()[:n_prompts]
    chosen = tuple(screen_result.top_heads(emotion, n))
    sets = {"top": chosen}
    for k, s in enumerate(random_head_sets(chosen, loaded.n_heads, n_random, profile.seed + 424242)):
        sets[f"random{k}"] = s
    source = np.flatnonzero(reps.rows(emotion, "train"))
    z_mean = scores["z_last"][source].double().mean(0).float()
    values = {layer: z_mean[layer] for layer in range(loaded.n_layers)}
    frames = []
    base = generate_plain(loaded, prompts, PatchSpec(max_new_tokens=new_tokens, window=(0, 1)))
    results = {"baseline": base}
    for name, s in sets.items():
        spec = HeadPatchSpec(s, "replace", "last", window=window, max_new_tokens=new_tokens, label=name)
        results[name] = generate_head_patched(loaded, prompts, spec, values)
    for name, res in results.items():
        df = pd.concat([score_all(res.texts), fluency_table(loaded, res)], axis=1)
        df.insert(0, "condition", name)
        df.insert(1, "prompt", range(len(prompts)))
        df["text"] = res.texts
        df["heads"] = ";".join(f"L{a}H{b}" for a, b in sets.get(name, ()))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    atomic_write_dataframe(out_dir(profile, model_name) / f"generation_{emotion}.csv", out)
    return out
