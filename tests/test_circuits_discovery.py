"""Circuit discovery on a tiny model with a planted circuit: the planted components must be found,
be faithful, and beat random circuits of the same layer profile; set metrics are checked by hand."""
import numpy as np
import pytest
import torch

from emocheck.circuits.attribution import attribute, flat
from emocheck.circuits.components import LastTokenRun, all_components, mean_activations, mlp_module
from emocheck.circuits.discovery import (SetEvaluation, ablation_ranking, discover, evaluate_sets, layer_profile, minimality_sets,
                                         random_circuits, smallest_prefix)
from emocheck.errors import ConfigError
from emocheck.heads.access import out_proj
from emocheck.testing import tiny_model

EMOTION = ["thank you so much", "thanks a lot, really", "so grateful for this", "many thanks friend",
           "thank you kindly", "I am thankful"]
NEUTRAL = ["the box is on a desk", "it is a tuesday", "the bus comes at six", "rain in the north",
           "a list of numbers", "the door is grey"]


def planted_model(family="llama"):
    """3 layers; every head's o_proj columns and every MLP output scaled by 1e-3 except the planted
    components (L1H2, L2H0, L2 MLP), which are scaled up: only they can carry a difference."""
    m = tiny_model(family, n_layers=3, seed=7)
    hd = m.head_dim
    planted_heads = {(1, 2), (2, 0)}
    for layer in range(3):
        w = out_proj(m, layer).weight.data           # [d, H*hd]
        for h in range(m.n_heads):
            w[:, h * hd:(h + 1) * hd] *= 20.0 if (layer, h) in planted_heads else 1e-3
        down = mlp_module(m, layer).down_proj.weight.data
        down *= 20.0 if layer == 2 else 1e-3
    comps = all_components(m)
    planted = sorted(i for i, c in enumerate(comps)
                     if (c.kind == "head" and (c.layer, c.head) in planted_heads) or (c.kind == "mlp" and c.layer == 2))
    return m, planted


def _direction(m):
    e = torch.stack([LastTokenRun(m, t).run()["resid"][0] for t in EMOTION]).mean(0)
    n = torch.stack([LastTokenRun(m, t).run()["resid"][0] for t in NEUTRAL]).mean(0)
    return e - n


def test_planted_circuit_is_recovered_and_beats_random_circuits():
    m, planted = planted_model()
    comps = all_components(m)
    u = _direction(m)
    source = mean_activations(m, NEUTRAL)
    attr = torch.stack([flat(attribute(m, t, source, direction=u)) for t in EMOTION]).mean(0)
    ranking = ablation_ranking(attr)
    assert set(ranking[:3]) == set(planted)             # attribution alone already finds the planted set
    found = discover(m, EMOTION, source, ranking, share=0.8, direction=u)
    assert found["reached"]
    assert set(found["circuit"]) <= set(planted), (found, planted)
    circuit = found["circuit"]
    rand = random_circuits(circuit, comps, 40, seed=0)
    ev = evaluate_sets(m, EMOTION, source, [circuit] + rand, direction=u)
    faith, comp = ev.faithfulness(), ev.completeness()
    assert faith[0] >= 0.8
    assert faith[0] > np.quantile(faith[1:], 0.95)
    assert comp[0] < np.quantile(comp[1:], 0.05)         # ablating the circuit leaves less than random
    # the full set recovers everything and the empty-complement is the baseline: exact bookkeeping
    everything = evaluate_sets(m, EMOTION, source, [list(range(len(comps)))], direction=u)
    assert everything.faithfulness()[0] == pytest.approx(1.0, abs=1e-5)
    assert everything.completeness()[0] == pytest.approx(0.0, abs=1e-5)


def test_discovery_in_blocks_finds_the_circuit_of_the_whole_curve():
    """Evaluating sizes a block at a time up to the first hit gives the circuit that evaluating every
    size gives, the same faithfulness wherever both evaluated, and the tail on its coarse grid."""
    m, planted = planted_model()
    u = _direction(m)
    source = mean_activations(m, NEUTRAL)
    attr = torch.stack([flat(attribute(m, t, source, direction=u)) for t in EMOTION]).mean(0)
    ranking = ablation_ranking(attr)
    n = len(ranking)
    whole = discover(m, EMOTION, source, ranking, share=0.8, direction=u, block=n)
    assert all(v is not None for v in whole["curve"])
    blocks = discover(m, EMOTION, source, ranking, share=0.8, direction=u, block=2, tail_step=3)
    assert blocks["circuit"] == whole["circuit"] and blocks["reached"]
    evaluated = [k for k, v in enumerate(blocks["curve"], 1) if v is not None]
    first_block_end = -(-whole["size"] // 2) * 2
    assert evaluated[:first_block_end] == list(range(1, first_block_end + 1))
    assert n in evaluated and len(evaluated) < n                 # the largest size, not every size
    for k in evaluated:
        assert blocks["curve"][k - 1] == pytest.approx(whole["curve"][k - 1], abs=1e-5)


def test_discovery_blocks_stop_at_the_first_block_reaching_the_share(monkeypatch):
    """The block rule on a planted curve (faithfulness of size k = curve[k - 1]): which sizes run."""
    import emocheck.circuits.discovery as D

    calls = []

    def fake_evaluate(loaded, texts, source, sets, **kw):
        calls.append([len(s) for s in sets])
        keep = np.array([[curve[len(s) - 1] for s in sets]])
        return SetEvaluation(np.array([1.0]), np.array([0.0]), keep)
    monkeypatch.setattr(D, "evaluate_sets", fake_evaluate)
    curve = [0.1, 0.2, 0.5, 0.7, 0.85, 0.6, 0.9, 0.95, 0.97, 0.99, 1.0]     # first hit at 5, a dip after
    found = D.discover(None, ["t"], None, list(range(11)), share=0.8, block=4, tail_step=3)
    assert found["size"] == 5 and found["reached"]
    assert calls == [[1, 2, 3, 4], [5, 6, 7, 8], [11]]                     # tail: 8 + 3 = 11 = the largest
    assert found["curve"] == [0.1, 0.2, 0.5, 0.7, 0.85, 0.6, 0.9, 0.95, None, None, 1.0]
    calls.clear()
    curve = [0.1] * 11                                                       # never reached: every size
    found = D.discover(None, ["t"], None, list(range(11)), share=0.8, block=4, tail_step=3)
    assert not found["reached"] and found["size"] == 11 and None not in found["curve"]
    assert calls == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]


def test_random_circuits_keep_size_and_layer_profile():
    m = tiny_model("llama", n_layers=3, seed=0)
    comps = all_components(m)
    circuit = [0, 5, 6, len(comps) - 1]
    sets = random_circuits(circuit, comps, 50, seed=3)
    assert all(layer_profile(s, comps) == layer_profile(circuit, comps) for s in sets)
    # matched on type: the circuit's one MLP is every random circuit's MLP, and its heads are heads
    assert all([c for c in s if comps[c].kind == "mlp"] == [len(comps) - 1] for s in sets)
    assert len({tuple(s) for s in sets}) > 10
    assert sets == random_circuits(circuit, comps, 50, seed=3)
    with pytest.raises(ConfigError):
        random_circuits(circuit, comps, 0, seed=3)


def test_set_evaluation_arithmetic():
    ev = SetEvaluation(full=np.array([3.0, 5.0]), none=np.array([1.0, 1.0]),
                       keep=np.array([[2.0, 3.0], [4.0, 1.0]]), drop=np.array([[1.0, 2.0], [2.0, 5.0]]))
    np.testing.assert_allclose(ev.faithfulness(), [(1 + 3) / 6, (2 + 0) / 6])
    np.testing.assert_allclose(ev.completeness(), [(0 + 1) / 6, (1 + 4) / 6])
    assert minimality_sets([1, 4, 9]) == [[4, 9], [1, 9], [1, 4]]


def test_smallest_prefix_is_the_first_size_reaching_the_share():
    assert smallest_prefix([7, 2, 5, 1], [0.3, 0.79, 0.8, 0.95], 0.8) == {"circuit": [7, 2, 5], "size": 3, "reached": True}
    assert smallest_prefix([7, 2, 5], [0.3, 0.5, 0.6], 0.8) == {"circuit": [7, 2, 5], "size": 3, "reached": False}
    assert smallest_prefix([7, 2, 5, 1], [0.3, 0.5, None, 0.9], 0.8)["size"] == 4     # None: not evaluated
    with pytest.raises(ConfigError):
        smallest_prefix([1], [1.0], 0.0)


def test_discover_rejects_bad_share():
    m = tiny_model("llama", n_layers=1, seed=0)
    with pytest.raises(ConfigError):
        discover(m, ["ab"], None, [0], share=1.5)


def test_edges_follow_the_planted_wiring():
    """In the planted model the early planted head's effect passes through later planted components,
    and nothing passes through a silenced component (its write is ~0)."""
    from emocheck.circuits.edges import edge_effects

    m, planted = planted_model()
    comps = all_components(m)
    u = _direction(m)
    source = mean_activations(m, NEUTRAL)
    silenced = next(i for i, c in enumerate(comps) if c.kind == "head" and (c.layer, c.head) == (2, 3))
    nodes = planted + [silenced]
    edges = edge_effects(m, EMOTION[:3], source, nodes, comps, direction=u)
    assert set(edges.src) == {"L1H2"} and set(edges.dst) == {"L2H0", "L2H3", "L2MLP"}
    into_silenced = float(edges.loc[edges.dst == "L2H3", "edge"].abs().max())
    into_planted = float(edges.loc[edges.dst != "L2H3", "edge"].abs().max())
    assert into_planted > 100 * max(into_silenced, 1e-12)
    assert into_planted > 1e-3


def test_random_circuit_null_is_calibrated_for_a_circuit_chosen_without_looking():
    """Planted null: a 'circuit' drawn at random (fixed size, no look at the data) is exchangeable with
    the random circuits of its layer profile, so the Monte-Carlo p of its faithfulness must be uniform:
    at most alpha of such circuits may be supported (within Monte-Carlo error)."""
    from emocheck.stats.nulls import compare_to_null

    m = tiny_model("llama", n_layers=3, seed=11)
    comps = all_components(m)
    u = _direction(m)
    source = mean_activations(m, NEUTRAL)
    rng = np.random.default_rng(0)
    reps, k, size = 80, 19, 4
    sets = []
    for r in range(reps):
        chosen = sorted(int(x) for x in rng.choice(len(comps), size=size, replace=False))
        sets += [chosen] + random_circuits(chosen, comps, k, seed=1000 + r)
    ev = evaluate_sets(m, EMOTION[:2], source, sets, drop=False, direction=u)
    faith = ev.faithfulness().reshape(reps, k + 1)
    p = np.array([compare_to_null(f[0], f[1:]).p_value for f in faith])
    alpha = 0.2                                           # attainable: multiples of 1/(k+1) = 0.05
    rate = float(np.mean(p <= alpha + 1e-12))
    print(f"planted-null rejection rate at alpha {alpha}: {rate:.3f} over {reps} circuits")
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps), rate
    assert np.std(faith[:, 0]) > 0                        # the statistic varies: the check can fail


def test_edge_attribution_is_the_first_order_limit_of_exact_edges():
    """For a source close to the prompt's own activations (eps x the way to the neutral mean) the
    first-order edge attribution equals the exact path-patching edge up to O(eps) (second order)."""
    from emocheck.circuits.components import Activations
    from emocheck.circuits.edges import edge_attribution, edge_effects

    m = tiny_model("llama", n_layers=3, seed=7)
    comps = all_components(m)
    u = _direction(m)
    text = EMOTION[0]
    a = LastTokenRun(m, text).run()["acts"]
    n = mean_activations(m, NEUTRAL)
    nodes = [i for i, c in enumerate(comps) if c.kind == "mlp" or c.head in (0, 1)]
    errors = []
    for eps in (0.2, 0.05):
        src = Activations(a.z[0] + eps * (n.z - a.z[0]), a.mlp[0] + eps * (n.mlp - a.mlp[0]))
        exact = edge_effects(m, [text], src, nodes, comps, direction=u).edge.to_numpy()
        eap = edge_attribution(m, [text], src, nodes, comps, direction=u).edge_attribution.to_numpy()
        big = np.abs(exact) > 0.1 * np.abs(exact).max()
        errors.append(np.max(np.abs(eap[big] - exact[big]) / np.abs(exact[big])))
        assert np.corrcoef(exact, eap)[0, 1] > 0.95
    assert errors[1] < 0.5 * errors[0] + 1e-3, errors            # the error shrinks with eps: first order
    assert errors[1] < 0.1, errors


def test_design_texts_rank_and_judge_on_disjoint_prompts():
    """The ranking's neutral sample is training, the judgement's is held-out; the first three samples are
    drawn as before (same generator, same order), so a circuit's ranking prompts do not move."""
    import pandas as pd

    from emocheck.circuits.experiment import design_texts, sample_texts, settings
    from emocheck.profiles import get_profile

    rng = np.random.default_rng(0)
    prompts = pd.DataFrame({"text": [f"{e}-{i}" for e in ("gratitude", "neutral") for i in range(60)],
                            "emotion": ["gratitude"] * 60 + ["neutral"] * 60,
                            "split": np.where(rng.random(120) < 0.3, "held_out", "train")})
    split = dict(zip(prompts.text, prompts.split))
    t = design_texts(prompts, "gratitude", settings(get_profile("ci")), seed=7)
    assert {split[x] for x in t["attr"] + t["neutral"]} == {"train"}
    assert {split[x] for x in t["held_out"] + t["held_out_neutral"]} == {"held_out"}
    assert all(x.startswith("neutral") for x in t["neutral"] + t["held_out_neutral"])
    assert not set(t["neutral"]) & set(t["held_out_neutral"])
    assert t == design_texts(prompts, "gratitude", settings(get_profile("ci")), seed=7)
    g = np.random.default_rng(7)
    cfg = settings(get_profile("ci"))
    assert [t["attr"], t["neutral"], t["held_out"]] == [
        sample_texts(prompts, "gratitude", "train", cfg["attr_prompts"], g),
        sample_texts(prompts, "neutral", "train", cfg["neutral_prompts"], g),
        sample_texts(prompts, "gratitude", "held_out", cfg["held_out"], g)]
