"""Propagation: forward-pass patch at layer L and projections at later layers (tiny models)."""
import pandas as pd
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.patching.conditions import claim_conditions
from emocheck.patching.propagation import last_position_projections, plot_propagation, propagation_table
from emocheck.representations.extraction import hf_hidden_states
from emocheck.testing import tiny_model

from fakes_patching import FakeVectors, fake_null_source

TEXTS = ["hello there", "hi", "a longer prompt here"]


def test_zero_delta_reads_plain_hidden_states():
    m = tiny_model("llama", n_layers=3, seed=5)
    units = {l: torch.randn(m.d_model, generator=torch.Generator().manual_seed(l), dtype=torch.float64) for l in (0, 1)}
    proj = last_position_projections(m, TEXTS, 0, "hook_resid_post", torch.zeros(3, m.d_model), units)
    # hs[l + 1] = resid_post of block l at the last token (but the last block's, which HF normalises)
    hs = hf_hidden_states(m, TEXTS, batch_size=8)
    for j, l in enumerate((0, 1)):
        expect = hs[l + 1].double() @ (units[l] / units[l].norm())
        assert torch.allclose(torch.as_tensor(proj[:, j]), expect, rtol=1e-4, atol=1e-4)


def test_delta_moves_the_patched_layer_by_exactly_its_projection():
    m = tiny_model("gpt2", n_layers=3, seed=6)
    u = torch.zeros(m.d_model, dtype=torch.float64)
    u[0] = 1.0
    delta = torch.zeros(3, m.d_model)
    delta[:, 0] = torch.tensor([1.0, 2.0, 3.0])
    base = last_position_projections(m, TEXTS, 1, "hook_resid_post", torch.zeros(3, m.d_model), {1: u, 2: u})
    moved = last_position_projections(m, TEXTS, 1, "hook_resid_post", delta, {1: u, 2: u})
    assert torch.allclose(torch.as_tensor(moved[:, 0] - base[:, 0]), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                          atol=1e-4)
    assert not torch.allclose(torch.as_tensor(moved[:, 1]), torch.as_tensor(base[:, 1]))   # it propagates
    with pytest.raises(ConfigError, match="one delta per prompt"):
        last_position_projections(m, TEXTS, 1, "hook_resid_post", delta[:2], {1: u})


def test_propagation_table_and_figure(tmp_path):
    m = tiny_model("llama", n_layers=3, seed=7)
    vecs = FakeVectors(d=m.d_model, seed=7)
    prompts = pd.DataFrame({"id": ["a", "b", "c"], "text": TEXTS})
    conds = claim_conditions(vecs, 1, 2.0, "hook_resid_post", prompts["id"], seed=3,
                             null_source=fake_null_source(d=m.d_model))
    units = {e: {l: vecs.vector(e, l) for l in (1, 2)} for e in ("gratitude", "anger", "apology")}
    df = propagation_table(m, prompts, conds, 1, "hook_resid_post", units)
    g = df[(df["emotion"] == "gratitude") & (df["read_layer"] == 1)].set_index("condition")
    assert (df.loc[df["kind"] == "baseline", "shift"].abs() < 1e-9).all()
    # at the patched layer the emotion vector shifts its own projection by alpha * ||v|| exactly
    v = vecs.vector("gratitude", 1)
    assert g.loc["gratitude", "shift"].to_numpy() == pytest.approx(2.0 * float(v.norm()), rel=1e-4)
    assert set(df["kind"]) == {"baseline", "emotion", "random", "permuted"}
    assert len(df[(df["condition"] == "random:anger") & (df["read_layer"] == 2)]) == 3
    plot_propagation(df, tmp_path / "p.png")
    assert (tmp_path / "p.png").exists()
