"""Batched generation of a design: per-prompt conditions, prompting rows, cache, float32 deltas."""
import pandas as pd
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.patching.conditions import Condition, claim_conditions, sweep_conditions
from emocheck.patching.engine import generate_patched
from emocheck.patching.residual import PatchSpec, tokenize_prompts
from emocheck.patching.fluency import continuation_nll
from emocheck.patching.running import batches, delta_dtype, design_rows, empty_counts, run_conditions
from emocheck.patching.selection import sweep_table
from emocheck.testing import tiny_model

from fakes_patching import FakeSubspaces, FakeVectors, fake_null_source

PROMPTS = pd.DataFrame({"id": ["a", "b", "c"], "text": ["hello there", "hi", "a longer prompt here"],
                        "topic": ["x", "y", "x"]})


def test_run_conditions_batched_cached(tmp_path):
    m = tiny_model("llama", n_layers=3, seed=1)
    vecs = FakeVectors(seed=1)
    spec = PatchSpec(layers=(0,), max_new_tokens=6, window=(0, 3))
    conds = sweep_conditions(vecs, [1, 2], [1.0, 3.0], spec.site, seed=9, prompt_ids=PROMPTS["id"])
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return generate_patched(*a, **k)

    out = run_conditions(m, PROMPTS, conds, spec, tmp_path, rows_per_batch=8, evaluators=False, progress=False,
                         generate=counting)
    n_rows = 1 * 3 + 2 * 2 * 3 * 3 + 2 * 2 * 3       # baseline + emotions x prompts + one random per prompt
    assert len(out) == n_rows and set(out["sample_id"]) == {"a", "b", "c"}
    assert {"text", "nll", "ppl", "distinct2", "rep3", "layer", "alpha", "seed", "norm", "empty", "topic"} <= set(out.columns)
    assert not list((tmp_path / "parts").glob("*.parquet"))
    base = out[out["kind"] == "baseline"].set_index("sample_id")
    ref = generate_patched(m, PROMPTS["text"].tolist(), spec.replace(layers=(1,)), None)
    for i, pid in enumerate(PROMPTS["id"]):
        assert base.loc[pid, "new_token_ids"] == " ".join(map(str, ref.new_tokens[i, : ref.lengths[i]].tolist()))
    c = conds[3]
    alone = generate_patched(m, PROMPTS["text"].tolist(), spec.replace(layers=(c.layer,), alpha=1.0), c.vector.float())
    got = out[out["condition"] == c.name].set_index("sample_id")
    for i, pid in enumerate(PROMPTS["id"]):
        assert got.loc[pid, "text"] == alone.texts[i]
    # a per-prompt random draw equals its own separate run on its prompt
    r = next(x for x in conds if x.kind == "random" and x.prompt_ids == ("b",))
    alone = generate_patched(m, ["hi"], spec.replace(layers=(r.layer,), alpha=1.0), r.vector.float()[None])
    row = out[(out["condition"] == r.name) & (out["sample_id"] == "b")]
    assert len(row) == 1 and row["text"].iloc[0] == alone.texts[0] and row["seed"].iloc[0] == r.seed
    n_calls = len(calls)
    again = run_conditions(m, PROMPTS, conds, spec, tmp_path, rows_per_batch=8, evaluators=False, progress=False,
                           generate=counting)
    assert len(calls) == n_calls and again.equals(out)
    table = sweep_table(out)
    assert set(table["alpha"]) == {1.0, 3.0} and set(table["layer"]) == {1, 2}


def test_prompting_rows_scored_as_continuations_of_the_neutral_opening(tmp_path):
    m = tiny_model("llama", n_layers=3, seed=2)
    d = m.d_model
    conds = [Condition("baseline", "baseline", None, 1, 0.0, torch.zeros(d, dtype=torch.float64)),
             Condition("prompt:x", "prompt", "x", 1, 0.0, torch.zeros(d, dtype=torch.float64), prefix="Thanks! ")]
    spec = PatchSpec(layers=(1,), max_new_tokens=5, window=(0, 2))
    out = run_conditions(m, PROMPTS, conds, spec, tmp_path, rows_per_batch=16, evaluators=False, progress=False)
    rows = design_rows(PROMPTS, conds)
    assert [bool(conds[c].prefix) for c, _ in rows] == [False] * 3 + [True] * 3
    assert all(len({bool(conds[c].prefix) for c, _ in b}) == 1 for b in batches(rows, conds, 16))
    p = out[out["condition"] == "prompt:x"].set_index("sample_id")
    ref = generate_patched(m, ["Thanks! " + t for t in PROMPTS["text"]], spec, None)
    ids, mask = tokenize_prompts(m, PROMPTS["text"].tolist())
    nll = continuation_nll(m, ids, mask, ref.new_tokens, ref.lengths)
    for i, pid in enumerate(PROMPTS["id"]):
        assert p.loc[pid, "text"] == ref.texts[i] and p.loc[pid, "prefix"] == "Thanks! "
        assert p.loc[pid, "prompt"] == PROMPTS["text"].iloc[i]
        assert p.loc[pid, "nll"] == pytest.approx(nll[i], rel=1e-4)


def test_full_claim_design_runs_on_a_tiny_model(tmp_path):
    m = tiny_model("gemma3_text", n_layers=3, seed=3)
    vecs = FakeVectors(d=m.d_model, seed=3)
    conds = claim_conditions(vecs, 1, 1.0, "hook_resid_post", PROMPTS["id"], seed=1,
                             null_source=fake_null_source(d=m.d_model), subspaces=FakeSubspaces(vecs), dose_alpha=0.5)
    spec = PatchSpec(layers=(1,), max_new_tokens=4, window=(0, 2))
    out = run_conditions(m, PROMPTS, conds, spec, tmp_path, rows_per_batch=32, evaluators=False, progress=False)
    per = out.groupby("condition").size()
    assert per["baseline"] == 3 and per["random:anger"] == 3 and per["permuted:apology"] == 3
    assert per["neg:gratitude"] == 2 and per["randsub:anger"] == 2 and per["random_dm:anger"] == 2
    assert not out.duplicated(["condition", "sample_id"]).any()
    counts = empty_counts(out)
    assert set(counts.columns) >= {"condition", "n_rows", "n_empty", "empty_fraction"}
    assert counts["n_rows"].sum() == len(out)


def test_design_errors():
    d = 8
    c = Condition("x", "random", None, 0, 1.0, torch.zeros(d), prompt_ids=("zz",))
    with pytest.raises(ConfigError, match="not in this run"):
        design_rows(PROMPTS, [c])
    dup = [Condition("x", "random", None, 0, 1.0, torch.zeros(d), prompt_ids=("a",))] * 2
    with pytest.raises(ConfigError, match="twice"):
        design_rows(PROMPTS, dup)


def test_deltas_in_float32_whatever_the_model_dtype():
    assert delta_dtype(torch.bfloat16) == torch.float32 and delta_dtype(torch.float16) == torch.float32
    assert delta_dtype(torch.float32) == torch.float32 and delta_dtype(torch.float64) == torch.float64
    import dataclasses

    from emocheck.patching.residual import prepare_directions

    m = tiny_model("llama", n_layers=2, seed=4)
    m16 = dataclasses.replace(m, dtype=torch.bfloat16)
    small = torch.full((m.d_model,), 1e-3 + 1e-6, dtype=torch.float64)
    dirs = prepare_directions(m16, PatchSpec(layers=(0,)), small, 2)
    assert dirs[0].dtype == torch.float32 and torch.allclose(dirs[0][0].double(), small, rtol=1e-6)


def test_cached_generations_are_rescored_when_the_instruments_change(tmp_path, monkeypatch):
    """A refitted evaluator head has a new model id: the cached samples table is re-scored (not served
    with stale scores, and not regenerated)."""
    import emocheck.patching.running as running

    ids = {"now": "heads@A"}

    def fake_score_all(texts, columns=None):
        return pd.DataFrame({"sentiment": [len(t) + (ids["now"] == "heads@B") for t in texts],
                             "empty": [not t.strip() for t in texts], "evaluator_ids": ids["now"]})

    monkeypatch.setattr(running, "score_all", fake_score_all)
    monkeypatch.setattr(running, "evaluator_ids", lambda: ids["now"])
    m = tiny_model("llama", n_layers=3, seed=4)
    spec = PatchSpec(layers=(0,), max_new_tokens=4, window=(0, 2))
    conds = sweep_conditions(FakeVectors(seed=4), [1], [1.0], spec.site, seed=3, prompt_ids=PROMPTS["id"])
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return generate_patched(*a, **k)

    kw = dict(rows_per_batch=8, progress=False, generate=counting)
    first = run_conditions(m, PROMPTS, conds, spec, tmp_path, **kw)
    n_calls = len(calls)
    assert (first["evaluator_ids"] == "heads@A").all()
    assert run_conditions(m, PROMPTS, conds, spec, tmp_path, **kw).equals(first)     # same instruments: cached
    ids["now"] = "heads@B"
    second = run_conditions(m, PROMPTS, conds, spec, tmp_path, **kw)
    assert len(calls) == n_calls                                                    # nothing regenerated
    assert (second["evaluator_ids"] == "heads@B").all() and second["text"].equals(first["text"])
    assert (second["sentiment"] == first["sentiment"] + 1).all()                    # new scores
    assert run_conditions(m, PROMPTS, conds, spec, tmp_path, **kw).equals(second)   # and cached again
