"""Circuit modulation design: the random-circuit assignment is connected and balanced, the verdict rule on
it (compare_directions with 2 of K draws per prompt, the exchangeable null) is calibrated by simulation, the summary pairs by
prompt against the right baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emocheck.circuits.generation import (EMOTIONS, baseline_agreement, draw_assignment, n_random, summarise,
                                         too_few_pairs_message)
from emocheck.patching.scoring import paired_scores
from emocheck.stats.directions import compare_directions


@pytest.mark.parametrize("n", [8, 20, 21, 200])
def test_draw_assignment_is_connected_and_balanced(n):
    k = n_random(n)
    asg = draw_assignment(n, k)
    assert all(a != b for a, b in asg)
    counts = np.bincount(np.ravel(asg), minlength=k)
    assert counts.min() >= 2 and counts.max() - counts.min() <= 2       # every draw on >= 2 prompts
    parent = list(range(k))                                              # union-find over prompts' draw pairs

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x
    for a, b in asg:
        parent[find(a)] = find(b)
    assert len({find(x) for x in range(k)}) == 1                         # additive fit identifiable


def _simulate(delta, tau, reps, seed, n=20, alpha=0.05, null="exchangeable"):
    """Share of raw p < alpha on the modulation design; the circuit's own effect is one more draw of the
    random-circuit population shifted by delta (b_t ~ N(delta, tau^2): at delta 0 the exchangeable null,
    the circuit is an ordinary random circuit)."""
    k = n_random(n)
    asg = draw_assignment(n, k)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        prompt = rng.normal(0, 1, n)
        b = rng.normal(0, tau, k)
        c = np.full((n, k), np.nan)
        for j, pair in enumerate(asg):
            for q in pair:
                c[j, q] = prompt[j] + b[q] + rng.normal(0, 1)
        treated = prompt + delta + rng.normal(0, tau) + rng.normal(0, 1, n)
        hits += compare_directions(treated, c, alternative="greater", interval=False, null=null).p_value < alpha
    return hits / reps


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_random_circuit_rule_is_calibrated_on_this_design(tau):
    """Planted exchangeable null (the circuit is one more random circuit): at most alpha supported
    within 4 Monte Carlo SEs; the population-mean rule (beats the AVERAGE random circuit) supports such a
    circuit far more often when circuits differ (tau 1: about 0.23). A planted effect is found most of
    the time: 1.5 prompt SDs without circuit-to-circuit variance, 3 with tau = 1 (the prediction
    interval carries the circuit's own draw, so it needs about 2 tau more)."""
    reps, alpha = 300, 0.05
    bound = alpha + 4 * np.sqrt(alpha * (1 - alpha) / reps)
    rate = _simulate(0.0, tau, reps, seed=11 + int(tau))
    assert rate <= bound, rate
    if tau > 0:
        assert _simulate(0.0, tau, reps, seed=11 + int(tau), null="population_mean") > bound
    assert _simulate(1.5 if tau == 0 else 3.0, tau, 100, seed=5) > 0.6


def _table():
    rows = []
    for j in range(4):
        sid = f"p{j}"
        rows.append({"sample_id": sid, "condition": "circuit_baseline", "new_token_ids": "1 2", "nll": 2.0, "rep3": 0.0})
        rows.append({"sample_id": sid, "condition": "baseline", "new_token_ids": "1 2" if j else "9", "nll": 1.0, "rep3": 0.0})
        for e in EMOTIONS:
            rows.append({"sample_id": sid, "condition": f"circuit:{e}", "nll": 2.5, "rep3": 0.1, f"signed_{e}": 1.0 + j})
            rows.append({"sample_id": sid, "condition": e, "nll": 1.2, "rep3": 0.0, f"signed_{e}": 0.5})
            for q in (0, 1):
                rows.append({"sample_id": sid, "condition": f"randcircuit:{e}", "nll": 2.0, "rep3": 0.0,
                             f"signed_{e}": float(q)})
            if j < 2:
                rows.append({"sample_id": sid, "condition": f"prompt:{e}", "nll": 1.0, "rep3": 0.0, f"signed_{e}": 2.0})
    t = pd.DataFrame(rows)
    for e in EMOTIONS:       # baselines score 0 on every target
        t.loc[t.condition.isin(["baseline", "circuit_baseline"]), f"signed_{e}"] = 0.0
    return t


def test_summary_pairs_each_method_with_its_own_baseline():
    s = summarise(_table()).set_index(["emotion", "method"])
    g = s.loc["gratitude"]
    assert g.loc["circuit", "target_shift"] == pytest.approx(2.5)            # mean of 1..4 minus 0
    assert g.loc["circuit", "nll_shift"] == pytest.approx(0.5)               # against this run's baseline
    assert g.loc["steering (phase 5)", "nll_shift"] == pytest.approx(0.2)    # against phase 5's baseline
    assert g.loc["random circuits", "target_shift"] == pytest.approx(0.5)    # mean over a prompt's draws
    assert g.loc["prompting (phase 5)", "n_prompts"] == 2
    assert baseline_agreement(_table()) == pytest.approx(0.75)


def test_too_few_pairs_names_a_small_design_or_a_stale_run():
    """Prompting runs on 2 of the 4 prompts: 2 pairs is a design too small for a test, and rerunning
    cannot help; a circuit table missing a prompt the control has is a stale run, and rerunning can."""
    t = _table().assign(distinct2=1.0)
    out = paired_scores(t, "circuit:apology", "prompt:apology", "signed_apology")
    msg = too_few_pairs_message(t, "circuit:apology", "prompt:apology", out["metrics"])
    assert "2 scored prompt pair(s)" in msg and "design pairs 2 prompts" in msg and "too small" in msg
    assert "rerun" not in msg
    stale = t[~((t.condition == "circuit:apology") & (t.sample_id == "p0"))]
    out = paired_scores(stale, "circuit:apology", "prompt:apology", "signed_apology")
    msg = too_few_pairs_message(stale, "circuit:apology", "prompt:apology", out["metrics"])
    assert "share 1 prompts where the design pairs 2" in msg and "rerun" in msg


def test_modulation_pipeline_end_to_end_on_a_tiny_model(monkeypatch, results_tmp):
    """modulation_samples + comparison_table on a tiny llama (circuits, prompts, phase-5 rows and the
    evaluators faked): the design's rows, a verified cache, baseline tokens equal to a plain run."""
    import types

    import emocheck.circuits.generation as gen
    from emocheck.patching.residual import PatchSpec, generate_plain
    from emocheck.profiles import get_profile
    from emocheck.testing import tiny_model

    m = tiny_model("llama", n_layers=2, seed=5)
    n = 6
    judged = pd.DataFrame({"id": [f"g{i}" for i in range(n)], "text": [f"hello number {i} there" for i in range(n)],
                           "topic": ["a", "b"] * 3})
    train = pd.DataFrame({"text": [f"{e} words {i}" for e in EMOTIONS for i in range(8)],
                          "emotion": [e for e in EMOTIONS for _ in range(8)],
                          "split": ["train", "held_out"] * (4 * len(EMOTIONS))})   # the written means are held-out
    reps = types.SimpleNamespace(prompts=train, vectors=types.SimpleNamespace(meta={"key": "v"}))
    spec = PatchSpec(layers=(0,), window=(0, 3), max_new_tokens=5, model="tiny")
    scores = lambda texts, columns=None: pd.DataFrame({c: np.linspace(0, 1, len(texts)) for c in  # noqa: E731
                                         ("sentiment", "politeness", "emo_gratitude", "emo_anger", "emo_remorse")}
                                        ).assign(empty=False)
    plain = generate_plain(m, judged.text.tolist(), spec)
    p5 = pd.DataFrame([{"sample_id": sid, "condition": c, "kind": c, "emotion": "", "text": "x", "nll": 1.0,
                        "rep3": 0.0, "distinct2": 1.0, "topic": "a", "politeness": 0.5, "sentiment": 0.0,
                        "emo_remorse": 0.1, "new_token_ids": " ".join(map(str, plain.new_tokens[j, :plain.lengths[j]].tolist()))}
                       for j, sid in enumerate(judged.id) for c in gen.PHASE5_CONDITIONS])
    monkeypatch.setattr(gen, "run_circuit", lambda model, profile, e, progress=True: {
        "circuit_index": [1, 5, 9] if e == "anger" else [0, 8], "key": f"c-{e}"})
    monkeypatch.setattr("emocheck.patching.experiment.split_generation_prompts", lambda profile: (judged, judged[:0]))
    monkeypatch.setattr("emocheck.patching.experiment.base_spec", lambda profile, name: spec)
    monkeypatch.setattr("emocheck.patching.experiment.claims_samples", lambda *a, **k: p5)
    monkeypatch.setattr("emocheck.representations.build.build_representations", lambda *a, **k: reps)
    monkeypatch.setattr("emocheck.models.registry.load_model", lambda name: m)
    monkeypatch.setattr("emocheck.patching.running.score_all", scores)
    profile = get_profile("smoke")

    both = gen.comparison_table("tiny", profile, progress=False)
    counts = both.groupby("condition").size()
    k = gen.n_random(n)
    assert counts["circuit_baseline"] == n and counts["circuit:anger"] == n and counts["randcircuit:anger"] == 2 * n
    assert counts["prompt:gratitude"] == n and counts["baseline"] == n
    rand = both[both.condition == "randcircuit:anger"]
    assert set(rand.draw) == set(range(k)) and (rand.n_patched == 3).all()
    assert gen.baseline_agreement(both) == 1.0                       # this run's baseline == plain generate
    assert np.allclose(both.loc[both.condition == "circuit:anger", "signed_anger"],
                       -both.loc[both.condition == "circuit:anger", "sentiment"])
    d = gen.out_dir(profile, "tiny") / "modulation"
    assert (d / "summary.csv").is_file() and (d / "comparison.png").is_file()
    monkeypatch.setattr("emocheck.models.registry.load_model", lambda name: (_ for _ in ()).throw(AssertionError("regenerated")))
    again = gen.modulation_samples("tiny", profile, progress=False)   # read back from the verified cache
    mine = both[~both.condition.isin(gen.PHASE5_CONDITIONS)]
    assert again.text.tolist() == mine.text.tolist() and np.allclose(again.nll, mine.nll)
