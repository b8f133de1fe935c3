"""Tiny randomly initialised models of every mapped family, built from configs (no download).

Used by the library's own tests and by anyone who wants to try the mechanics in a notebook without
weights. The tokenizer is a character-level fast tokenizer built in code, so offsets (needed for
trigger positions) work exactly as with real tokenizers.
"""
from __future__ import annotations

import string

import torch

from emocheck.models.architectures import architecture_for
from emocheck.models.registry import LoadedModel, ModelSpec

_CHARS = string.ascii_letters + string.digits + string.punctuation + " \n'’é"
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def tiny_tokenizer(add_bos: bool = True, padding_side: str = "right"):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in _CHARS:
        vocab.setdefault(ch, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side=padding_side,
    )
    return tok


TINY_FAMILIES = ("gpt2", "gpt_neox", "gpt_neo", "llama", "qwen3", "gemma3_text")


def tiny_config(family: str, n_layers: int = 3, vocab_size: int = 128):
    from transformers import (GPT2Config, GPTNeoConfig, GPTNeoXConfig, Gemma3TextConfig, LlamaConfig,
                              Qwen3Config)

    common = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "gpt2":
        return GPT2Config(n_layer=n_layers, n_embd=64, n_head=4, n_positions=256, **common)
    if family == "gpt_neox":
        return GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=64, num_attention_heads=4,
                             intermediate_size=128, max_position_embeddings=256, **common)
    if family == "gpt_neo":
        return GPTNeoConfig(num_layers=n_layers, hidden_size=64, num_heads=4, max_position_embeddings=256,
                            attention_types=[[["global"], n_layers]] if n_layers % 2 else [[["global", "local"], n_layers // 2]], window_size=16, **common)
    if family == "llama":
        return LlamaConfig(num_hidden_layers=n_layers, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=128, max_position_embeddings=256, **common)
    if family == "qwen3":
        return Qwen3Config(num_hidden_layers=n_layers, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                           head_dim=16, intermediate_size=128, max_position_embeddings=256, **common)
    if family == "gemma3_text":
        return Gemma3TextConfig(num_hidden_layers=n_layers, hidden_size=64, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=32, intermediate_size=128,
                                max_position_embeddings=256, sliding_window=16, **common)
    raise ValueError(f"no tiny config for family {family!r}; one of {TINY_FAMILIES}")


def tiny_model(family: str = "llama", n_layers: int = 3, seed: int = 0) -> LoadedModel:
    """A randomly initialised model of `family` wrapped as a LoadedModel, with the tiny tokenizer."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(family, n_layers=n_layers)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    model.requires_grad_(False)
    tokenizer = tiny_tokenizer()
    arch = architecture_for(model.config)
    name = f"tiny-{family}"
    spec = ModelSpec(name, "tiny", description="random tiny model for tests")
    identity = {"name": name, "source": "tiny", "family": family, "n_layers": n_layers, "seed": seed}
    return LoadedModel(name, spec, model, tokenizer, arch, torch.device("cpu"), torch.float32, identity)
