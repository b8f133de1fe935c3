import pytest
import torch

from emocheck.errors import ConfigError, DatasetError
from emocheck.representations.extraction import extract_activations, hf_hidden_states, tokenize

TEXTS = ["Thanks so much for the help!", "Hi there", "I am furious about the late parcel, again.", "ok then"]
TRIGGERS = ["Thanks so much", "there", "furious", "ok"]
RULES = ("trigger_last", "last", "mean")


def test_batch_equals_one_by_one(tiny_any):
    """Padding never leaks: a batch of different lengths gives each prompt's activations alone."""
    m = tiny_any
    batch = extract_activations(m, TEXTS, TRIGGERS, positions=RULES, batch_size=4, progress=False)
    for i, (t, g) in enumerate(zip(TEXTS, TRIGGERS)):
        alone = extract_activations(m, [t], [g], positions=RULES, progress=False)
        for rule in RULES:
            for site, value in batch[rule].items():
                assert torch.allclose(value[i], alone[rule][site][0], atol=1e-5, rtol=1e-4), (rule, site, i)


def test_batches_are_sorted_by_length_and_rows_come_back_in_order(tiny_llama, monkeypatch):
    """Batches of 2 group the prompts by token length (not by position), and every row of the output
    is still the caller's prompt at that index, as computed alone."""
    import emocheck.representations.extraction as ex

    m = tiny_llama
    seen = []
    real = ex.tokenize
    monkeypatch.setattr(ex, "tokenize", lambda model, texts, trig=None: seen.append(list(texts)) or real(model, texts, trig))
    texts, trig = TEXTS * 2, TRIGGERS * 2
    batch = extract_activations(m, texts, trig, positions=RULES, batch_size=2, progress=False)
    n_tok = {t: len(m.tokenizer(t)["input_ids"]) for t in texts}
    assert [n_tok[t] for b in seen for t in b] == sorted(n_tok[t] for t in texts)
    monkeypatch.setattr(ex, "tokenize", real)
    for i, (t, g) in enumerate(zip(texts, trig)):
        alone = extract_activations(m, [t], [g], positions=RULES, progress=False)
        for rule in RULES:
            for site, value in batch[rule].items():
                assert torch.allclose(value[i], alone[rule][site][0], atol=1e-5, rtol=1e-4), (rule, site, i)


def test_parity_with_hf_output_hidden_states(tiny_any):
    m = tiny_any
    acts = extract_activations(m, TEXTS, positions=("last",), progress=False)["last"]
    hs = hf_hidden_states(m, TEXTS)
    assert torch.allclose(acts["blocks.0.hook_resid_pre"], hs[0], atol=1e-6)
    for layer in range(m.n_layers - 1):   # HF's last hidden state is after the final norm
        assert torch.allclose(acts[f"blocks.{layer}.hook_resid_post"], hs[layer + 1], atol=1e-5)
        if layer:
            assert torch.equal(acts[f"blocks.{layer}.hook_resid_pre"], acts[f"blocks.{layer - 1}.hook_resid_post"])


def test_pad_tokens_are_never_read(tiny_llama):
    """Changing what the pad token embeds changes nothing we extract."""
    m = tiny_llama
    before = extract_activations(m, TEXTS, TRIGGERS, positions=RULES, progress=False)
    emb = m.model.get_input_embeddings()
    pad = m.tokenizer.pad_token_id
    saved = emb.weight[pad].clone()
    try:
        with torch.no_grad():
            emb.weight[pad] = 1e4
        after = extract_activations(m, TEXTS, TRIGGERS, positions=RULES, progress=False)
    finally:
        with torch.no_grad():
            emb.weight[pad] = saved
    for rule in RULES:
        for site in before[rule]:
            assert torch.allclose(before[rule][site], after[rule][site], atol=1e-5), (rule, site)


def test_positions_follow_the_rules(tiny_llama):
    b = tokenize(tiny_llama, TEXTS, TRIGGERS)
    # char-level tokenizer with <bos>: token j+1 is character j.
    assert b.last.tolist() == [len(t) for t in TEXTS]
    assert b.trigger_last.tolist() == [t.find(g) + len(g) for t, g in zip(TEXTS, TRIGGERS)]
    assert b.mean_mask[:, 0].sum() == 0                     # first token (bos / attention sink) excluded
    assert torch.equal(b.mean_mask.sum(1), (b.attention_mask.sum(1) - 1).float())


def test_mean_excludes_the_first_token(tiny_llama):
    m = tiny_llama
    acts = extract_activations(m, TEXTS[:1], positions=("mean",), layers=[1], sites=("hook_resid_post",), progress=False)
    ids = m.tokenizer(TEXTS[:1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        full = m.model(input_ids=ids, output_hidden_states=True).hidden_states[2][0]
    assert torch.allclose(acts["mean"]["blocks.1.hook_resid_post"][0], full[1:].mean(0), atol=1e-5)


def test_bad_requests_are_clear(tiny_llama):
    with pytest.raises(ConfigError, match="layer 9 is out of range"):
        extract_activations(tiny_llama, TEXTS, layers=[9], progress=False)
    with pytest.raises(ConfigError, match="unknown position rule"):
        extract_activations(tiny_llama, TEXTS, positions=("first",), progress=False)
    with pytest.raises(ConfigError, match="needs the triggers"):
        extract_activations(tiny_llama, TEXTS, positions=("trigger_last",), progress=False)
    with pytest.raises(DatasetError, match="is not in the prompt"):
        extract_activations(tiny_llama, ["hello"], ["bye"], positions=("trigger_last",), progress=False)


def test_progress_is_shown(tiny_llama, capsys):
    extract_activations(tiny_llama, TEXTS, batch_size=2, progress=True)
    assert "extract tiny-llama" in capsys.readouterr().err
