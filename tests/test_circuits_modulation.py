"""Circuit modulation in generation: the engine's component patch gives the same greedy tokens as the
plain-hook reference (Hugging Face generate, row-by-row replacement) on every tiny family, rows with
an empty mask are unpatched runs, and nothing before the window changes."""
from __future__ import annotations

import pytest
import torch

from emocheck.circuits.components import all_components
from emocheck.circuits.modulation import ComponentPatch, generate_component_patch_hooks
from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry
from emocheck.patching.engine import generate_fast
from emocheck.patching.residual import PatchSpec, generate_plain
from emocheck.testing import TINY_FAMILIES, tiny_model

PROMPTS = ["hello there, my friend", "hi", "a quick test of padding!", "x"]


def design(m, n_sets=3, seed=0, scale=3.0):
    """Rows: every prompt x (empty mask, n_sets random component sets), two value sources."""
    g = head_geometry(m)
    n_comp = len(all_components(m))
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(2, g.n_layers, g.n_heads, g.head_dim, generator=gen) * scale
    mlp = torch.randn(2, g.n_layers, g.d_model, generator=gen) * scale
    sets = [torch.zeros(n_comp, dtype=torch.bool)]
    for _ in range(n_sets):
        sets.append(torch.rand(n_comp, generator=gen) < 0.3)
    masks = torch.stack([s for s in sets for _ in PROMPTS])
    source = torch.tensor([(i // len(PROMPTS)) % 2 for i in range(len(masks))])
    return PROMPTS * len(sets), masks, z, mlp, source


@pytest.fixture(scope="module")
def models():
    return {fam: tiny_model(fam, n_layers=3, seed=2) for fam in TINY_FAMILIES}


@pytest.mark.parametrize("family, window", [(f, (0, 4)) for f in TINY_FAMILIES] + [("gemma3_text", (2, 5)),
                                                                                 ("gpt2", (2, 5))])
def test_engine_component_patch_matches_plain_hooks(models, family, window):
    m = models[family]
    spec = PatchSpec(layers=(0,), window=window, max_new_tokens=8)
    texts, masks, z, mlp, source = design(m)
    plain = generate_plain(m, texts, spec)
    ref = generate_component_patch_hooks(m, texts, spec, masks, z, mlp, source)
    for max_rows in (5, 64):                     # split batches (other padding, dropped rows) and one batch
        patch = ComponentPatch(m, masks, z, mlp, source, window)
        fast = generate_fast(m, texts, spec, None, max_rows=max_rows, intervention=patch)
        assert not patch.handles                 # the engine closed it: no hook is left on the model
        assert torch.equal(fast.new_tokens, ref.new_tokens), max_rows
        assert fast.texts == ref.texts and torch.equal(fast.lengths, ref.lengths)
    n = len(PROMPTS)
    # empty masks are unpatched runs; tokens before the window are never changed; the patch does something
    assert torch.equal(ref.new_tokens[:n], plain.new_tokens[:n, :ref.new_tokens.shape[1]])
    assert torch.equal(ref.new_tokens[:, :window[0]], plain.new_tokens[:, :window[0]])
    assert not torch.equal(ref.new_tokens[n:], plain.new_tokens[n:, :ref.new_tokens.shape[1]])


def test_fluency_is_scored_unpatched(models):
    """The engine's continuation NLL is under the UNPATCHED model: equal to a plain re-scoring."""
    from emocheck.patching.fluency import continuation_nll

    m = models["llama"]
    spec = PatchSpec(layers=(0,), window=(0, 4), max_new_tokens=6)
    texts, masks, z, mlp, source = design(m)
    fast = generate_fast(m, texts, spec, None, intervention=ComponentPatch(m, masks, z, mlp, source, (0, 4)))
    nll = continuation_nll(m, fast.input_ids, fast.attention_mask, fast.new_tokens, fast.lengths)
    torch.testing.assert_close(torch.as_tensor(fast.meta["continuation_nll"]), torch.as_tensor(nll), rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_config_errors(models):
    m = models["llama"]
    texts, masks, z, mlp, source = design(m)
    with pytest.raises(ConfigError, match="one entry per mask row"):
        ComponentPatch(m, masks, z, mlp, source[:-1], (0, 2))
    with pytest.raises(ConfigError, match="source values"):
        ComponentPatch(m, masks, z[:, :1], mlp, source, (0, 2))
    with pytest.raises(ConfigError, match="columns"):
        ComponentPatch(m, masks[:, :-1], z, mlp, source, (0, 2))
