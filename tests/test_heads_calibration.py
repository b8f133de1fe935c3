"""Calibration of phase 6's "top writers beat random head sets" claim (hypotheses/test_q1_heads.py) by
simulation through the experiment's own code.

The claim ranks heads on TRAINING prompts and judges the chosen top-8 set on HELD-OUT prompts against
1000 random sets with its layer profile (Monte-Carlo p, min_d 1 null SD, Holm over the declared family
of 3 emotions x 2 models). Its strongest null is selection reuse: with no emotion signal in any head,
anything the ranking saw that also enters the judged statistic makes the chosen set look better than its
random sets. The simulation writes per-head vectors, builds the final-layer direction u from the
TRAINING residuals (the sum of the heads' writes, as `build_representations` does), projects every
head's write on u (the screen's `direct` measure) and then runs the project's functions: `score_heads`
(the ranking), `writers_null` (the chosen set, its 1000 random sets and the judged statistic with its
references, `first_order_null` / `intervention_rows`), `compare_to_null` with the claim's declared
alternative and min_d, and `adjust_pvalues` / `verdict` at the family's size.

* No signal, heads alike: every head's write is noise on emotion and neutral prompts alike. The landed
  claim measured the set's held-out mean effect against the TRAINING neutral mean, the same mean the
  ranking subtracted, so the noise that made a head look good in training stayed in its judged effect:
  raw p <= .05 in 0.43 and mean d 1.4 null SDs (40 data sets, landed code); now about alpha.
* No signal, heads of different sizes (log-normal scale SD 0.5 and 1): the ranking prefers large heads
  (the more so as u is built from the same training prompts, so a head's own training noise is part of
  u), and a large set's held-out MEAN spreads more than a random set's: with held-out references but the
  mean as the statistic, raw p <= .05 in 0.14 (SD 0.5) and 0.24 (SD 1, supported 0.02 per claim) of
  the data sets (landed code: 0.65 at SD 0.5). The claim's statistic is the set's held-out Welch t,
  which every set has on the same scale.
* Planted: four heads (one per layer) write `PLANTED_MU` along a fixed direction on emotion prompts.
  Power has a ceiling set by the null, not by n: a random set with the chosen set's layer profile holds
  each planted head with probability q = (chosen heads in its layer) / (heads per layer), which spreads
  the null, so with m planted heads d cannot exceed about m (1 - q) / sqrt(m q (1 - q)) however strong
  they are (3.9 for three heads at q = 1/6), while min_d 1 at alpha / 6 needs d of about 3.4. With 4
  heads per layer (Gemma 3 270M) few planted writers can be supported at all.

Monte-Carlo tolerance: R data sets per scenario; a raw rejection rate is calibrated when it is at most
alpha + 3 sqrt(alpha (1 - alpha) / R), a supported rate when at most alpha / m + 3 sqrt(...) for the
family's m. `python tests/test_heads_calibration.py` prints every scenario with more data sets.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.heads.experiment import ScreenSample
from emocheck.heads.growth import writers_null
from emocheck.heads.screening import MEASURES, score_heads
from emocheck.profiles import get_profile
from emocheck.stats import adjust_pvalues, compare_to_null, verdict

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 0.05
EMOTION = "gratitude"
PROFILE = get_profile("ci")
FAMILY_SIZE = 3 * len(PROFILE.models)          # 3 emotions x the ci models, as declared
LAYERS, HEADS, DIM = 4, 16, 16
PER_CLASS = PROFILE.heads.screen_prompts     # prompts screened per class at ci
HELD_OUT = 0.3                                 # the dataset's held-out fraction
PLANTED = ((0, 1), (1, 3), (2, 5), (3, 7))
PLANTED_MU = 3.0


def declared_claim() -> dict:
    """alternative / min_d of the writers claim, from the hypothesis file itself."""
    spec = importlib.util.spec_from_file_location("q1_heads_claims", ROOT / "hypotheses" / "test_q1_heads.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mark = next(m for m in mod.test_heads_top_writers_beat_random_sets.pytestmark if m.name == "emocheck_claim")
    return {k: mark.kwargs[k] for k in ("alternative", "min_d")}


def prompts_table(rng) -> pd.DataFrame:
    rows = []
    for label in (EMOTION, "neutral"):
        held = rng.permutation(PER_CLASS) < math.floor(PER_CLASS * HELD_OUT)
        rows += [{"id": f"{label}-{i}", "emotion": label, "split": "held_out" if h else "train"}
                 for i, h in enumerate(held)]
    return pd.DataFrame(rows)


def simulate_claim(rng, seed: int, claim: dict, scales: np.ndarray, mu: float = 0.0):
    """One data set through the claim's path; returns its Comparison."""
    prompts = prompts_table(rng)
    n = len(prompts)
    writes = scales[None, :, :, None] * rng.standard_normal((n, LAYERS, HEADS, DIM))
    if mu:
        v = np.eye(DIM)[0]
        is_emotion = (prompts.emotion == EMOTION).to_numpy()
        for layer, head in PLANTED:
            writes[is_emotion, layer, head] += mu * v
    resid = writes.sum((1, 2)) + rng.standard_normal((n, DIM))
    train = (prompts.split == "train").to_numpy()
    u = resid[train & (prompts.emotion == EMOTION).to_numpy()].mean(0) - resid[train & (prompts.emotion == "neutral").to_numpy()].mean(0)
    direct = torch.from_numpy(writes @ (u / np.linalg.norm(u)))          # [n, L, H]: the screen's direct measure
    scores = {m: direct[..., None] for m in MEASURES if m != "trigger"}
    scores["trigger"] = direct
    scores["z_last"] = torch.zeros(n, LAYERS, HEADS, 1)
    reps = ScreenSample("sim", prompts, None)
    screen = score_heads(scores, prompts, [EMOTION], "sim", n_boot=20, seed=seed)
    profile = dataclasses.replace(PROFILE, seed=seed)                  # seeds the random head sets
    r = writers_null(screen, scores, reps, [EMOTION], profile, EMOTION)
    return compare_to_null(r["observed"], r["null"], alternative=claim["alternative"], min_d=claim["min_d"],
                           alpha=ALPHA)


def judged(comp) -> bool:
    """Supported as the first claim of a Holm family of FAMILY_SIZE (its smallest threshold, alpha / m)."""
    p = adjust_pvalues([comp.p_value], "holm", n_tests=FAMILY_SIZE)[0]
    pm = adjust_pvalues([comp.p_min_effect], "holm", n_tests=FAMILY_SIZE)[0]
    return verdict(comp, p, pm) == "supported"


def run_scenario(reps: int, seed: int, hetero: float = 0.0, mu: float = 0.0) -> dict:
    claim = declared_claim()
    rng = np.random.default_rng(seed)
    out = {"raw": [], "supported": [], "d": []}
    for i in range(reps):
        scales = np.exp(hetero * rng.standard_normal((LAYERS, HEADS)))
        comp = simulate_claim(rng, seed * 10_007 + i, claim, scales, mu)
        out["raw"].append(comp.p_value <= ALPHA)
        out["supported"].append(judged(comp))
        out["d"].append(comp.d)
    return {k: float(np.mean(v)) for k, v in out.items()} | {"reps": reps}


def mc_se(p: float, reps: int) -> float:
    return math.sqrt(p * (1 - p) / reps)


# --------------------------------------------------------------------------------------------- tests

def test_no_signal_heads_alike_is_calibrated():
    res = run_scenario(60, seed=1)
    print(f"no signal, heads alike: {res}")
    assert res["raw"] <= ALPHA + 3 * mc_se(ALPHA, res["reps"]), res
    assert res["supported"] <= ALPHA / FAMILY_SIZE + 3 * mc_se(ALPHA / FAMILY_SIZE, res["reps"]), res


def test_no_signal_heads_of_different_sizes_is_calibrated():
    res = run_scenario(60, seed=2, hetero=1.0)
    print(f"no signal, log-normal head scales (sd 1): {res}")
    assert res["raw"] <= ALPHA + 3 * mc_se(ALPHA, res["reps"]), res
    assert res["supported"] <= ALPHA / FAMILY_SIZE + 3 * mc_se(ALPHA / FAMILY_SIZE, res["reps"]), res


def test_planted_writers_are_supported():
    """Four planted writers: supported in most data sets (main(): the rate over 200)."""
    res = run_scenario(24, seed=3, mu=PLANTED_MU)
    print(f"planted (4 heads, mu {PLANTED_MU}): {res}")
    assert res["supported"] >= 0.5, res
    assert res["d"] > 3.0, res


def main() -> None:
    for name, kw, reps in (("no signal, heads alike", {}, 300),
                           ("no signal, head scales log-normal sd 0.5", {"hetero": 0.5}, 300),
                           ("no signal, head scales log-normal sd 1.0", {"hetero": 1.0}, 300),
                           (f"planted mu {PLANTED_MU}", {"mu": PLANTED_MU}, 200),
                           ("planted mu 2.0", {"mu": 2.0}, 200)):
        res = run_scenario(reps, seed=11, **kw)
        print(f"{name}: raw p<=.05 {res['raw']:.3f} (SE {mc_se(max(res['raw'], ALPHA), reps):.3f}), supported "
              f"{res['supported']:.3f} (SE {mc_se(max(res['supported'], ALPHA / FAMILY_SIZE), reps):.3f}), "
              f"mean d {res['d']:.2f} null SDs, {reps} data sets")


if __name__ == "__main__":
    main()
