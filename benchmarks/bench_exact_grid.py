"""The exact head grid (every emotion x intervention x n of `emocheck.heads.exact_growth`) computed the
previous way, one table at a time (`heads.growth.exact_effects`: a prefix pass per prompt and table),
against `heads.growth.exact_many` (a prefix pass per distinct prompt, every row of every table in one
last-token batch), in one process on a real model: seconds, the ratio, and the largest difference
relative to each table's largest effect. Needs the model's head screen (run the heads claims once, or
it is computed first). Nothing is written: the tables go to a temporary results folder.

    python benchmarks/bench_exact_grid.py smollm2-135m --profile ci
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--profile", default="ci")
    args = ap.parse_args(argv)

    from emocheck.heads.experiment import EMOTIONS, screen
    from emocheck.heads.growth import EXACT_KINDS, N_VALUES, _exact_plan, _exact_values, exact_effects
    from emocheck.models.registry import load_model
    from emocheck.profiles import get_profile, results_dir

    profile = get_profile(args.profile)
    screen_result, scores, reps = screen(args.model, profile)            # the real results folder's screen
    loaded = load_model(args.model)
    final = loaded.n_layers - 1
    requests = [(e, k, n) for e in EMOTIONS for k in EXACT_KINDS for n in N_VALUES]
    plans = [_exact_plan(screen_result, scores, reps, profile, args.model, e, k, n) for e, k, n in requests]
    texts_all = reps.prompts["text"].to_numpy()

    t = time.perf_counter()
    old = []
    for plan in plans:
        z, _, u = _exact_values(plan, scores, reps, final)
        old.append(exact_effects(loaded, texts_all[plan["sample"]].tolist(), plan["sets"], z, u, plan["kind"]))
    t_old = time.perf_counter() - t

    from emocheck.heads import growth
    tmp = Path(tempfile.mkdtemp(prefix="emocheck-exact-"))
    real = results_dir(profile, "patching", "heads", args.model)
    try:
        growth.out_dir = lambda profile, model_name: tmp               # keep the real cache untouched
        t = time.perf_counter()
        new = growth.exact_many(args.model, profile, requests)
        t_new = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    worst = 0.0
    for plan, want, df in zip(plans, old, new):
        ids = reps.prompts["id"].to_numpy()[plan["sample"]]
        got = df.pivot(index="set", columns="prompt_id", values="effect")[ids].to_numpy()
        worst = max(worst, float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12)))
    rows = sum(len(p["sets"]) * len(p["sample"]) for p in plans)
    print(f"{args.model} ({args.profile}): {len(plans)} tables, {rows} patched rows; one table at a time "
          f"{t_old:.1f} s, exact_many {t_new:.1f} s: {t_old / t_new:.2f}x; largest difference {worst:.1e} of "
          f"the table's largest effect (results folder untouched: {real})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
