"""Calibration of phase 8's circuit rule (hypotheses/test_q8_circuits.py) by simulation.

The rule: rank components by attribution on TRAINING prompts (each component's value minus its mean
over training neutral prompts), keep the smallest prefix whose training faithfulness reaches SHARE, then
judge its HELD-OUT faithfulness ('greater') and completeness ('less') against K random circuits with its
type-and-layer profile (Monte-Carlo p, min_d in null SDs, Holm over the declared family of 3 emotions x
2 models). Calibrating the rule needs no model: the metric is additive, the effect on prompt i being
sum_c a_ic with a_ic = x_ic - m_c (component c's value on the prompt minus the mean it is ablated to), so
keep-only and ablate-only sets are exact sums. Everything else is the experiment's own code:
`design_texts` (which prompts rank, which are judged, which give the ablation means), `ablation_ranking`,
`smallest_prefix` (discover's prefix search), `random_circuits`, `SetEvaluation.faithfulness /
completeness`, `compare_to_null` with the claims' declared alternative and min_d (read from the
hypothesis file's markers), and the plugin's `report.finalize` for Holm and the verdict.

* Exchangeable null: every component carries the emotion equally (x_ic = mu + noise on emotion prompts,
  noise on neutral ones), so no circuit is special; the circuit must be exchangeable with its random
  circuits and the rule may support at most alpha of the claims.
* Shared reference: the landed design judged the held-out prompts against the SAME training neutral
  mean the ranking subtracted, so the components whose neutral mean came out low by chance were ranked
  in AND judged high (`landed=True` below reproduces it: raw p <= .05 far above alpha); the design
  judges against held-out neutral prompts.
* Types differ: MLPs carry more than heads (x = 1.0 vs 0.2) but no component is special within its
  type. Random circuits drawn among a layer's heads AND its MLP (the landed rule, `landed_random_circuits`)
  lose to any circuit that holds the MLPs; matched on type they hold the same MLPs.
* The same circuits judged on their TRAINING prompts (selection and test on the same data) must look
  far better than random: the check can fail, and held-out judging is what makes the rule sound.
* Planted circuit: three components with a larger mean contribution; the rule must find them
  (planted set inside the discovered circuit) and support the claims (power).

Rates over a few hundred data sets per setting and two model shapes are printed by
``python tests/test_circuits_calibration.py`` (docs/findings/circuits.md, "Emotion circuits"); the tests
run fewer data sets to stay fast.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from emocheck.circuits.components import Component
from collections import Counter

import pandas as pd

from emocheck.circuits.discovery import (SetEvaluation, ablation_ranking, random_circuits, set_mask,
                                         smallest_prefix)
from emocheck.circuits.experiment import EMOTIONS, SHARE, design_texts, settings
from emocheck.plugin.report import finalize
from emocheck.profiles import get_profile
from emocheck.stats.nulls import compare_to_null

ROOT = Path(__file__).resolve().parents[1]
CI = settings(get_profile("ci"))
ALPHA = 0.05
FAMILY_SIZE = len(EMOTIONS) * len(get_profile("ci").models)       # as declared for the ci profile
CLAIM_TESTS = {"faithfulness": "test_circuits_faithfulness_beats_random_circuits",
               "completeness": "test_circuits_completeness_beats_random_circuits"}


def declared_claims() -> dict[str, dict]:
    """alternative / min_d / family of the two phase-8 circuit claims, from the hypothesis file itself."""
    spec = importlib.util.spec_from_file_location("q8_circuits_claims", ROOT / "hypotheses" / "test_q8_circuits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = {}
    for stat, name in CLAIM_TESTS.items():
        mark = next(m for m in getattr(mod, name).pytestmark if m.name == "emocheck_claim")
        out[stat] = {k: mark.kwargs[k] for k in ("alternative", "min_d", "family")}
    return out


def components(layers: int, heads: int) -> list[Component]:
    """All heads, then all MLPs, layer order within each kind (emocheck.circuits.components.all_components)."""
    return ([Component("head", layer, h) for layer in range(layers) for h in range(heads)]
            + [Component("mlp", layer) for layer in range(layers)])


def additive_evaluation(a: np.ndarray, sets, rng) -> SetEvaluation:
    """The experiment's per-prompt metrics when the effect is additive: a [n_prompts, n_components]."""
    none = rng.normal(0.0, 1.0, a.shape[0])           # what is left with everything ablated; cancels in the shares
    mask = set_mask(sets, a.shape[1]).numpy().astype(float)
    return SetEvaluation(full=none + a.sum(1), none=none, keep=none[:, None] + a @ mask.T,
                         drop=none[:, None] + a @ (1.0 - mask).T)


PER_CLASS, HELD_OUT = 60, 0.3                  # prompts per class in the simulated dataset, held-out share


def prompts_table(rng) -> pd.DataFrame:
    rows = []
    for label in (EMOTIONS[0], "neutral"):
        held = rng.permutation(PER_CLASS) < math.floor(PER_CLASS * HELD_OUT)
        rows += [{"text": f"{label}-{i}", "emotion": label, "split": "held_out" if h else "train"}
                 for i, h in enumerate(held)]
    return pd.DataFrame(rows)


def landed_random_circuits(circuit, comps, k: int, seed: int) -> list[list[int]]:
    """Reference copy of the landed sampler: per layer, drawn among that layer's heads AND its MLP."""
    by_layer: dict[int, list[int]] = {}
    for i, c in enumerate(comps):
        by_layer.setdefault(c.layer, []).append(i)
    rng = np.random.default_rng(seed)
    profile = sorted(Counter(comps[c].layer for c in circuit).items())
    return [sorted(int(x) for layer, count in profile for x in rng.choice(by_layer[layer], size=count, replace=False))
            for _ in range(k)]


def simulate_claim(comps, means: np.ndarray, sd: float, rng, seed: int, claims: dict, k: int = CI["random"],
                   landed: bool = False):
    """One data set: discover on training prompts, judge on held-out (and, as the leaky contrast, on
    the training prompts). Component values x [prompt, component]: `means` on emotion prompts, 0 on
    neutral ones, plus N(0, sd^2). landed=True: the landed design (held-out judged against the training
    neutral mean; type-mixed random circuits). Returns (circuit, {split: {stat: Comparison}})."""
    prompts = prompts_table(rng)
    n_comp = len(comps)
    is_emotion = (prompts.emotion == EMOTIONS[0]).to_numpy()[:, None]
    x = pd.DataFrame(np.where(is_emotion, means[None, :], 0.0) + sd * rng.standard_normal((len(prompts), n_comp)),
                     index=prompts.text)
    texts = design_texts(prompts, EMOTIONS[0], CI, seed)
    rank_mean = x.loc[texts["neutral"]].to_numpy().mean(0)
    judge_mean = rank_mean if landed else x.loc[texts["held_out_neutral"]].to_numpy().mean(0)
    train = x.loc[texts["attr"]].to_numpy() - rank_mean
    held = x.loc[texts["held_out"]].to_numpy() - judge_mean
    # attribution = first-order change of the metric when a component takes its neutral value = -a_ic
    ranking = ablation_ranking(-train.mean(0))
    curve = additive_evaluation(train, [ranking[:j] for j in range(1, n_comp + 1)], rng).faithfulness()
    circuit = smallest_prefix(ranking, curve, SHARE)["circuit"]
    sets = [circuit] + (landed_random_circuits if landed else random_circuits)(circuit, comps, k, seed)
    out = {}
    for split, a in (("held_out", held), ("train", train)):
        ev = additive_evaluation(a, sets, rng)
        values = {"faithfulness": ev.faithfulness(), "completeness": ev.completeness()}
        out[split] = {stat: compare_to_null(v[0], v[1:], alternative=claims[stat]["alternative"],
                                            min_d=claims[stat]["min_d"], alpha=ALPHA)
                      for stat, v in values.items()}
    return circuit, out


def verdicts(comparisons, family: str) -> np.ndarray:
    """Supported or not for consecutive families of FAMILY_SIZE claims, through report.finalize (Holm)."""
    results = [{"claim_id": f"sim.py::{family}[{i // FAMILY_SIZE:05d}-{i % FAMILY_SIZE}]",
                "family": f"{family}-{i // FAMILY_SIZE:05d}", "family_size": FAMILY_SIZE, "module": "sim.py",
                "status": "ok", "comparison": c.to_dict(), "kind": c.kind, "samples": None,
                "settings": {"paired": False, "alternative": c.alternative, "min_d": c.min_d, "alpha": c.alpha}}
               for i, c in enumerate(comparisons)]
    rows, _ = finalize(results, "holm")
    return np.array([r["verdict"] == "supported" for r in rows])


def run_scenario(n_families: int, means: np.ndarray, sd: float, comps, seed: int, landed: bool = False) -> dict:
    """n_families x FAMILY_SIZE simulated claims (one data set each); rates per statistic and split."""
    claims = declared_claims()
    rng = np.random.default_rng(seed)
    n = n_families * FAMILY_SIZE
    circuits, comps_by = [], {(s, t): [] for s in ("held_out", "train") for t in claims}
    for i in range(n):
        circuit, out = simulate_claim(comps, means, sd, rng, seed * 100_003 + i, claims, landed=landed)
        circuits.append(circuit)
        for (split, stat), lst in comps_by.items():
            lst.append(out[split][stat])
    res = {"n_claims": n, "n_families": n_families, "sizes": np.array([len(c) for c in circuits]),
           "circuits": circuits}
    for (split, stat), cs in comps_by.items():
        sup = verdicts(cs, f"{split}-{stat}")
        res[(split, stat)] = {
            "raw": float(np.mean([c.p_value <= ALPHA for c in cs])),            # one claim, min_d 0, uncorrected
            "supported": float(sup.mean()),                                    # the rule: Holm over 6, min_d
            "family_any": float(sup.reshape(n_families, FAMILY_SIZE).any(1).mean()),
            "p": np.array([c.p_value for c in cs]),
        }
    return res


def se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------------------------- tests

LAYERS, HEADS = 2, 11              # 24 components; random_circuits' cost grows with the layers
PLANTED = (3, 9, 16)               # L0H3, L0H9, L1H5: heads (a planted MLP is in every type-matched random circuit)


def planted_means(comps, big: float = 2.0) -> np.ndarray:
    means = np.zeros(len(comps))
    means[list(PLANTED)] = big
    return means


def test_exchangeable_null_supports_at_most_alpha():
    comps = components(LAYERS, HEADS)
    res = run_scenario(50, np.full(len(comps), 0.5), 1.0, comps, seed=1)
    n = res["n_claims"]
    assert 0.3 * len(comps) < np.median(res["sizes"]) < len(comps)       # a real prefix search happened
    for stat in ("faithfulness", "completeness"):
        r = res[("held_out", stat)]
        print(f"null {stat}: raw p<=alpha {r['raw']:.3f}, supported {r['supported']:.3f}, "
              f"family-wise {r['family_any']:.3f} over {n} claims")
        # the Monte-Carlo p is exact here: its rejection rate is alpha within Monte-Carlo error
        assert abs(r["raw"] - ALPHA) <= 4 * se(ALPHA, n), r["raw"]
        assert r["supported"] <= ALPHA + 3 * se(ALPHA, n)
        assert r["family_any"] <= ALPHA + 3 * se(ALPHA, res["n_families"])
        # judged on the prompts it was chosen on, the same circuit beats its random circuits: the check can fail
        leaky = res[("train", stat)]
        print(f"null {stat} judged on training prompts: raw {leaky['raw']:.3f}, supported {leaky['supported']:.3f}")
        assert leaky["raw"] > ALPHA + 3 * se(ALPHA, n)


def test_shared_training_reference_fails_and_held_out_reference_is_calibrated():
    """Every component alike; the landed design (held-out effects against the ranking's own training
    neutral mean) rejects far more than alpha, the held-out neutral reference does not."""
    comps = components(LAYERS, HEADS)
    for landed in (True, False):
        res = run_scenario(20, np.full(len(comps), 0.5), 1.0, comps, seed=3, landed=landed)
        n = res["n_claims"]
        for stat in ("faithfulness", "completeness"):
            r = res[("held_out", stat)]
            print(f"{'landed' if landed else 'design'} shared-reference null {stat}: raw {r['raw']:.3f}, "
                  f"supported {r['supported']:.3f} over {n} claims")
            if landed:
                assert r["raw"] > ALPHA + 3 * se(ALPHA, n), r["raw"]
            else:
                assert r["raw"] <= ALPHA + 3 * se(ALPHA, n), r["raw"]
                assert r["supported"] <= ALPHA + 3 * se(ALPHA, n)


def test_random_circuits_matched_on_type():
    """MLPs carry more than heads, nothing is special within a type: type-mixed random circuits (landed)
    lose to the circuit in every data set; type-matched ones are the circuit's own exchangeable nulls."""
    comps = components(LAYERS, HEADS)
    assert all(sorted(Counter((comps[c].layer, comps[c].kind) for c in r).items())
               == sorted(Counter((comps[c].layer, comps[c].kind) for c in (0, 1, 22)).items())
               for r in random_circuits([0, 1, 22], comps, 20, seed=4))
    kinds = np.array([3.0 if c.kind == "mlp" else 0.1 for c in comps])
    for landed in (True, False):
        res = run_scenario(10, kinds, 1.0, comps, seed=4, landed=landed)
        n = res["n_claims"]
        for stat in ("faithfulness", "completeness"):
            r = res[("held_out", stat)]
            print(f"{'landed' if landed else 'design'} MLPs 3 > heads 0.1 {stat}: raw {r['raw']:.3f}, "
                  f"supported {r['supported']:.3f} over {n} claims")
            if landed:
                assert r["raw"] > 0.9, r["raw"]
            else:
                assert r["raw"] <= ALPHA + 3 * se(ALPHA, n), r["raw"]
                assert r["supported"] <= ALPHA + 3 * se(ALPHA, n)


def test_planted_circuit_is_found_and_supported():
    comps = components(LAYERS, HEADS)
    res = run_scenario(10, planted_means(comps), 0.5, comps, seed=2)
    n = res["n_claims"]
    recovered = np.mean([set(PLANTED) <= set(c) for c in res["circuits"]])
    print(f"planted: recovered {recovered:.3f}, median size {np.median(res['sizes'])}")
    assert recovered >= 0.75                  # main(): the rate over 240 data sets
    assert np.median(res["sizes"]) <= 2 * len(PLANTED)                    # small: not most of the model
    for stat in ("faithfulness", "completeness"):
        r = res[("held_out", stat)]
        print(f"planted {stat}: supported {r['supported']:.3f} over {n} claims")
        assert r["supported"] >= 0.8          # main(): the rate over 240 data sets


def main() -> None:
    """The report's numbers: a few hundred data sets per scenario, two model shapes."""
    for layers, heads in ((LAYERS, HEADS), (6, 4)):
        comps = components(layers, heads)
        planted = np.zeros(len(comps))
        planted[[1, layers * heads // 2, layers * heads - 1]] = 2.0          # three heads
        kinds = np.array([1.0 if c.kind == "mlp" else 0.2 for c in comps])
        for name, means, sd, fams, landed in (
                ("null mu=0.5", np.full(len(comps), 0.5), 1.0, 60, False),
                ("null mu=0.5, LANDED design", np.full(len(comps), 0.5), 1.0, 60, True),
                ("MLPs 1.0 > heads 0.2", kinds, 1.0, 20, False),
                ("MLPs 1.0 > heads 0.2, LANDED design", kinds, 1.0, 20, True),
                ("null mu=0.1", np.full(len(comps), 0.1), 1.0, 60, False),
                ("planted sd=1", planted, 1.0, 40, False),
                ("planted sd=0.5", planted, 0.5, 40, False)):
            res = run_scenario(fams, means, sd, comps, seed=11, landed=landed)
            n = res["n_claims"]
            line = f"{layers}x({heads}+1) {name}: n={n} claims / {fams} families, median size {np.median(res['sizes'])}"
            if name.startswith("planted"):
                idx = set(np.flatnonzero(means > 1))
                line += f", planted recovered {np.mean([idx <= set(c) for c in res['circuits']]):.3f}"
            print(line)
            for split in ("held_out", "train"):
                for stat in ("faithfulness", "completeness"):
                    r = res[(split, stat)]
                    print(f"   {split:8s} {stat:12s} raw {r['raw']:.3f} (SE {se(max(r['raw'], ALPHA), n):.3f})  "
                          f"supported {r['supported']:.3f} (SE {se(max(r['supported'], ALPHA), n):.3f})  "
                          f"family-wise {r['family_any']:.3f} (SE {se(max(r['family_any'], ALPHA), fams):.3f})")


if __name__ == "__main__":
    main()
