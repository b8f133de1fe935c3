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


def whole_prompt_projections(loaded, texts, layer, site, deltas, read_units):
    """Reference: each row's whole prompt through the model alone, plain hooks adding its delta at the
    last position of `layer`'s site and reading the last position of every read layer."""
    read = sorted(read_units)
    out = []
    for text, delta in zip(texts, deltas):
        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
        seen, handles = {}, []

        def post(l):
            def hook(mod, args, output):
                h = output[0] if isinstance(output, tuple) else output
                if l == layer and site == "hook_resid_post":
                    h[:, -1] += delta
                seen[l] = h[0, -1].double()
            return hook

        def pre(mod, args, kwargs):
            (args[0] if args else kwargs["hidden_states"])[:, -1] += delta
        if site == "hook_resid_pre":
            handles.append(loaded.layer_module(layer).register_forward_pre_hook(pre, with_kwargs=True))
        for l in sorted(set(read) | {layer}):
            handles.append(loaded.layer_module(l).register_forward_hook(post(l)))
        try:
            with torch.no_grad():
                loaded.model(input_ids=ids)
        finally:
            for h in handles:
                h.remove()
        out.append([float(seen[l] @ (read_units[l].double() / read_units[l].double().norm())) for l in read])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("site", ["hook_resid_post", "hook_resid_pre"])
def test_shared_prefix_rows_equal_whole_prompt_patched_passes(family, site):
    """Rows of the same prompt share one cached prefix and run the last token only; every row equals
    its own whole-prompt patched pass (prompts repeated, of different lengths, one of them one token)."""
    m = tiny_model(family, n_layers=3, seed=8)
    texts = ["hello there", "a longer prompt here", "hello there", "a longer prompt here", "hello there", "x"]
    gen = torch.Generator().manual_seed(4)
    deltas = torch.randn(len(texts), m.d_model, generator=gen) * 3
    units = {l: torch.randn(m.d_model, generator=gen, dtype=torch.float64) for l in (1, 2)}
    got = last_position_projections(m, texts, 1, site, deltas, units)
    want = whole_prompt_projections(m, texts, 1, site, deltas, units)
    torch.testing.assert_close(torch.as_tensor(got), want, atol=1e-4, rtol=1e-4)
    assert (got[0] - got[2]).__abs__().max() > 1e-3      # rows of one prompt differ by their deltas
