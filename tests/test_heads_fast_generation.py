"""Head patches on the fast engine: the same greedy tokens as the plain-hook reference and the nnsight
implementation on every tiny family (GQA included), rows with different head sets (and unpatched rows)
in one batch, and the fluency NLL equal to a full second forward."""
import numpy as np
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry
from emocheck.heads.fast_generation import HeadRowPatch, generate_heads_fast
from emocheck.heads.patching import generate_head_patched
from emocheck.heads.reference import generate_head_patched_hooks
from emocheck.heads.specs import HeadPatchSpec
from emocheck.patching.fluency import continuation_nll
from emocheck.patching.residual import PatchSpec, generate_plain
from emocheck.testing import TINY_FAMILIES, tiny_model

PROMPTS = ["hello there, my friend", "hi", "a quick test of padding!", "x y"]
SETS = [((0, 1), (2, 3)), ((1, 0),), ((0, 0), (1, 2), (2, 1))]


@pytest.fixture(scope="module")
def models():
    return {fam: tiny_model(fam, n_layers=3, seed=1) for fam in TINY_FAMILIES}


def _values(loaded, seed=0, scale=6.0):
    g = head_geometry(loaded)
    gen = torch.Generator().manual_seed(seed)
    return {layer: torch.randn(g.n_heads, g.head_dim, generator=gen) * scale for layer in range(g.n_layers)}


CASES = ([(fam, "replace", "last", (0, 4)) for fam in TINY_FAMILIES]
         + [(fam, mode, pos, win) for fam in ("llama", "gemma3_text")          # GQA families: every variant
            for mode, pos, win in (("zero", "all", (0, 3)), ("mean", "last", (1, 5)))])


@pytest.mark.parametrize("family,mode,positions,window", CASES)
def test_fast_head_generation_matches_hooks_and_nnsight(models, family, mode, positions, window):
    m = models[family]
    vals = None if mode == "zero" else _values(m)
    specs = [HeadPatchSpec(s, mode, positions, window=window, max_new_tokens=8) for s in SETS]
    # the design: every set and an unpatched row on every prompt, mixed in one generation
    texts, row_specs = [], []
    for p in PROMPTS:
        for s in specs + [None]:
            texts.append(p)
            row_specs.append(s)
    hooks = [generate_head_patched_hooks(m, PROMPTS, s, vals) for s in specs]
    plain = generate_plain(m, PROMPTS, PatchSpec(max_new_tokens=8, window=(0, 1)))
    nns = generate_head_patched(m, PROMPTS, specs[0], vals)
    assert torch.equal(hooks[0].new_tokens, nns.new_tokens)          # nnsight == hooks (more in test_heads_patching)
    for max_rows in (5, 64):                     # split batches (other padding) and one batch
        fast = generate_heads_fast(m, texts, row_specs, vals, max_rows=max_rows)
        for s, ref in zip(specs, hooks):
            rows = [i for i, r in enumerate(row_specs) if r is s]
            width = ref.new_tokens.shape[1]
            assert torch.equal(fast.new_tokens[rows][:, :width], ref.new_tokens), (family, s.heads, max_rows)
            assert (fast.lengths[rows] == ref.lengths).all()
        rows = [i for i, r in enumerate(row_specs) if r is None]
        assert torch.equal(fast.new_tokens[rows][:, :plain.new_tokens.shape[1]], plain.new_tokens)
    # the patches do something on this model (else the parity above would prove little)
    assert any(not torch.equal(ref.new_tokens, plain.new_tokens) for ref in hooks), family


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_per_row_values_and_fluency_nll(models, family):
    m = models[family]
    g = head_geometry(m)
    gen = torch.Generator().manual_seed(3)
    per_row = {layer: torch.randn(len(PROMPTS), g.n_heads, g.head_dim, generator=gen) * 6 for layer in range(g.n_layers)}
    spec = HeadPatchSpec(SETS[0], "replace", "last", window=(0, 3), max_new_tokens=7)
    fast = generate_heads_fast(m, PROMPTS, spec, per_row)
    for i, p in enumerate(PROMPTS):             # row i's own values, alone
        alone = generate_head_patched_hooks(m, [p], spec, {k: v[i] for k, v in per_row.items()})
        w = alone.new_tokens.shape[1]
        assert torch.equal(fast.new_tokens[i, :w], alone.new_tokens[0])
    full = continuation_nll(m, fast.input_ids, fast.attention_mask, fast.new_tokens, fast.lengths)
    np.testing.assert_allclose(fast.meta["continuation_nll"], full, rtol=1e-4, atol=1e-5)


def test_bad_designs_are_clear_errors(models):
    m = models["llama"]
    with pytest.raises(ConfigError, match="share mode"):
        HeadRowPatch(m, [HeadPatchSpec(SETS[0], "zero"), HeadPatchSpec(SETS[1], "mean")], _values(m))
    with pytest.raises(ConfigError, match="no row"):
        HeadRowPatch(m, [None, None])
    with pytest.raises(ConfigError, match="needs values"):
        generate_heads_fast(m, PROMPTS[:1], HeadPatchSpec(SETS[0], "mean", max_new_tokens=4))
