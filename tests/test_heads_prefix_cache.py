"""The prefix-cache fast path equals full patched forward passes (nnsight) for last-token patches,
including Gemma's sliding-window cache and grouped-query attention."""
import pytest
import torch

from emocheck.heads.patching import patched_residuals
from emocheck.heads.prefix_cache import last_token_residuals
from emocheck.heads.specs import HeadPatchSpec
from emocheck.testing import tiny_model

TEXT = "Huge thanks to the driver who carried it up four flights of stairs!"


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("mode", ["mean", "zero"])
def test_prefix_cache_equals_full_forward(family, mode):
    loaded = tiny_model(family)
    gen = torch.Generator().manual_seed(0)
    values = {layer: torch.randn(loaded.n_heads, loaded.head_dim, generator=gen) for layer in range(loaded.n_layers)}
    specs = [HeadPatchSpec(s, mode, "last") for s in [((0, 1),), ((1, 0), (2, 3)), ((0, 0), (2, 2)), ((2, 1),)]]
    final = loaded.n_layers - 1
    clean, patched = last_token_residuals(loaded, TEXT, specs, values, final, rows_per_pass=3)
    enc = loaded.tokenizer([TEXT] * len(specs), return_tensors="pt")
    last = enc["attention_mask"].sum(1) - 1
    full = patched_residuals(loaded, enc["input_ids"], enc["attention_mask"], last, specs, values, read_layers=[final])[final]
    torch.testing.assert_close(patched, full, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(patched[0], clean, atol=1e-4)        # the patch did something


def test_positions_must_be_last():
    loaded = tiny_model("llama")
    with pytest.raises(ValueError, match="last position only"):
        last_token_residuals(loaded, TEXT, [HeadPatchSpec(((0, 1),), "zero", "all")], None, 2)
