"""LastTokenRun.many (prefixes in right-padded batches) against one prefix pass per prompt, and the
circuits' memo of neutral means."""
import pytest
import torch

from emocheck.circuits.components import LastTokenRun, _split_prefix, all_components, mean_activations
from emocheck.circuits.exact import patched_metric
from emocheck.circuits.experiment import neutral_means
from emocheck.testing import TINY_FAMILIES, tiny_model

TEXTS = ["thank you so much", "ok", "the box is on a desk near the window", "so grateful for this, friend",
         "rain"]
LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_batched_prefixes_give_what_one_pass_per_prompt_gives(family):
    m = tiny_model(family, n_layers=3, seed=3)
    texts = TEXTS + ([LONG] if family == "gemma3_text" else [])   # past its sliding window: the fallback
    n_comp = len(all_components(m))
    source = mean_activations(m, TEXTS)
    u = torch.randn(m.d_model, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(6, n_comp, generator=gen) < 0.4
    for batched, solo in zip(LastTokenRun.many(m, texts, batch_size=4), [LastTokenRun(m, t) for t in texts]):
        assert batched.prefix.get_seq_length() == solo.prefix.get_seq_length() == solo.ids.shape[1] - 1
        a, b = batched.run(direction=u), solo.run(direction=u)
        assert torch.allclose(a["resid"], b["resid"], atol=1e-5, rtol=1e-5)
        pa = patched_metric(batched, mask, source, direction=u)
        pb = patched_metric(solo, mask, source, direction=u)
        assert abs(pa - pb).max() < 1e-4 * max(1.0, abs(pb).max())


def test_the_batched_path_is_taken_and_refuses_what_it_cannot_slice():
    m = tiny_model("llama", n_layers=2)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 7, 7]])
    out = m.model.base_model(input_ids=ids, use_cache=True)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    parts = _split_prefix(cache, [4, 2])
    assert parts is not None and [p.get_seq_length() for p in parts] == [4, 2]
    assert torch.equal(parts[1].layers[0].keys, cache.layers[0].keys[1:2, :, :2])
    assert _split_prefix(cache, [5, 2]) is None                         # rows longer than the batch: not a split

    g = tiny_model("gemma3_text", n_layers=2)
    wide = torch.arange(3, 3 + 20)[None].expand(2, -1)                  # 20 >= sliding window 16 - 1
    out = g.model.base_model(input_ids=wide, use_cache=True)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    assert _split_prefix(cache, [20, 12]) is None


def test_neutral_means_are_remembered_per_model_object_and_texts():
    m = tiny_model("llama", n_layers=2)
    first = neutral_means(m, TEXTS)
    again = neutral_means(m, list(TEXTS))
    assert again is first                                               # same model, same texts: one pass
    exact = mean_activations(m, TEXTS)
    assert torch.equal(first.z, exact.z) and torch.equal(first.mlp, exact.mlp)
    assert neutral_means(m, TEXTS[::-1]) is not first                   # other order: computed anew
    other = tiny_model("llama", n_layers=2, seed=5)
    assert not torch.equal(neutral_means(other, TEXTS).z, first.z)      # another model object is never served
