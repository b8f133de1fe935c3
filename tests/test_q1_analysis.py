"""Q1 judging helpers (emocheck.representations.q1, readout) on a tiny model: subsets, the masked
re-extraction, the lexical comparison's pairing, and the read-out null."""
import numpy as np
import pandas as pd
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.profiles import Profile
from emocheck.representations import build as representations
from emocheck.representations import cache as activation_cache
from emocheck.representations.q1 import beats_words_null, judge_direction, masked_held_out
from emocheck.representations.readout import EMOTION_WORDS, readout_test, unembedding, word_token_ids


@pytest.fixture
def tiny_reps(tmp_path, monkeypatch, results_tmp):
    from emocheck.testing import tiny_model

    tiny = tiny_model("llama", n_layers=2)
    rows = []
    for e, word in (("gratitude", "thanks"), ("anger", "furious"), ("apology", "sorry"), ("neutral", "room")):
        for i in range(16):
            implicit = i % 2 == 0 and e != "neutral"
            trig = f"kept {word}" if not implicit else f"quiet {e[:3]} {i}"
            text = f"msg {i}: {trig} about item {i * 7}"
            rows.append({"id": f"{e}-{i}", "emotion": e, "text": text, "trigger": trig, "genre": "chat",
                         "formality": "informal", "explicitness": "none" if e == "neutral" else
                         ("implicit" if implicit else "explicit"), "topic": "x"})
    pd.DataFrame(rows).to_csv(tmp_path / "emotion_prompts.csv", index=False)
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(tmp_path))
    for mod in (representations,):
        monkeypatch.setattr(mod, "model_identity", lambda name: tiny.identity)
        monkeypatch.setattr(mod, "model_n_layers", lambda name: tiny.n_layers)
        monkeypatch.setattr(mod, "load_model", lambda name: tiny)
    import emocheck.models.registry as registry

    monkeypatch.setattr(registry, "load_model", lambda name: tiny)
    representations._MEMO.clear()
    activation_cache.clear_memo()
    profile = Profile(name="unit", models=("tiny",), prompts_per_emotion=None, batch_size=8)
    return representations.build_representations("tiny", profile, progress=False), tiny


def test_judge_direction_all_and_implicit(tiny_reps):
    reps, _ = tiny_reps
    res = judge_direction(reps, "anger", direction_kind="vs_other", contrast="vs_other", position="last")
    held = reps.prompts["split"] == "held_out"
    assert len(res.treated) == int((held & (reps.prompts.emotion == "anger")).sum())
    assert len(res.control) == int((held & reps.prompts.emotion.isin(["gratitude", "apology"])).sum())
    m = res.metrics()
    assert {"lexical_auc", "auc_minus_lexical", "delong_p_greater", "beats_words_alone", "layer"} <= set(m)
    assert m["auc_minus_lexical"] == pytest.approx(m["held_out_auc"] - m["lexical_auc"])
    imp = judge_direction(reps, "anger", direction_kind="vs_other", contrast="vs_other", position="last", subset="implicit")
    assert set(imp.treated_ids) <= set(res.treated_ids) and len(imp.control) < len(res.control)
    assert all(reps.prompts.set_index("id").loc[i, "explicitness"] == "implicit" for i in imp.treated_ids + imp.control_ids)
    observed, null = beats_words_null(res, draws=200)
    assert observed == pytest.approx(m["auc_minus_lexical"]) and len(null) == 200
    with pytest.raises(ConfigError, match="unknown subset"):
        judge_direction(reps, "anger", direction_kind="vs_other", contrast="vs_other", subset="odd")


def test_masked_subset_reextracts_without_the_trigger(tiny_reps):
    reps, _ = tiny_reps
    masked = masked_held_out(reps, "tiny", progress=False)
    held = reps.prompts[reps.prompts["split"] == "held_out"]
    assert masked.ids == held["id"].tolist()
    layer = reps.layers[-1]
    full = reps.activations.get(layer, "hook_resid_post", "last")[torch.as_tensor((reps.prompts["split"] == "held_out").to_numpy())]
    assert not torch.allclose(full, masked.get(layer, "hook_resid_post", "last"))
    res = judge_direction(reps, "anger", direction_kind="vs_neutral", contrast="vs_neutral", position="last",
                          subset="masked", masked_acts=masked)
    # the keyword is gone from every judged text, so the words-alone baseline falls to chance or below
    assert res.comparison["auc_b"] < 0.8
    again = masked_held_out(reps, "tiny", progress=False)          # cached: same key, same numbers
    assert torch.equal(again.get(layer, "hook_resid_post", "mean"), masked.get(layer, "hook_resid_post", "mean"))


def test_read_out_ranks_a_planted_direction_first_and_a_random_one_anywhere():
    from emocheck.testing import tiny_model

    m = tiny_model("llama")
    w = unembedding(m)
    own = word_token_ids(m.tokenizer, EMOTION_WORDS["anger"])
    emotions = ["anger", "apology", "gratitude"]
    planted = readout_test(m, w[own].mean(0).float(), "anger", emotions, draws=300)
    assert planted["rank_among_random"] == 1
    ranks = [readout_test(m, torch.randn(w.shape[1], generator=torch.Generator().manual_seed(s)), "anger", emotions,
                          draws=99, seed=100 + s)["rank_among_random"] for s in range(30)]
    assert 20 < np.mean(ranks) < 80          # uniform on 1..100 under the null: mean 50.5, SE 5.3
    with pytest.raises(ConfigError, match="no read-out word lists"):
        readout_test(m, w[0].float(), "joy", ["joy", "anger"])


def test_readout_scores_equal_the_whole_vocabulary_product():
    from emocheck.representations.readout import readout_scores

    gen = torch.Generator().manual_seed(3)
    w = torch.randn(5000, 48, generator=gen, dtype=torch.float64)
    d = torch.randn(64, 48, generator=gen, dtype=torch.float64)
    own, others = [3, 17, 4999], [0, 250, 1024, 4000]
    unit = d / d.norm(dim=1, keepdim=True)
    logits = unit @ w.T
    expected = (logits[:, own].mean(1) - logits[:, others].mean(1)).numpy()
    assert np.allclose(readout_scores(w, d, own, others), expected, rtol=0, atol=1e-12)
