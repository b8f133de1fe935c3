"""Activation extraction (phase 2): the residual stream at chosen token positions, through nnsight.

Positions are chosen by rule, per prompt:
    trigger_last  the last token of the trigger span (the phrase that carries the emotion)
    last          the last prompt token
    mean          the mean over the prompt's tokens, excluding padding AND the first token: in SmolLM2
                  the first token is an attention sink with a residual norm near 24,000 against 150-600
                  elsewhere, and in Gemma it is <bos>; either way it would swamp the average.

Batches are padded on the RIGHT with an attention mask: in a causal model, right padding leaves every
real position's computation identical to running the prompt alone (positions 0..n-1, no pad in its
past), and the rules above only ever read real tokens, so a pad is never read. The forward pass stops
after the last requested layer (`tracer.stop()`): extraction never needs logits, and Gemma 3 270M's
262k-token unembedding is most of its forward cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from emocheck.progress import tqdm

from emocheck import timing
from emocheck.compute import token_flops

from emocheck.models.architectures import check_layer, resolve, site_name
from emocheck.errors import ConfigError, DatasetError
from emocheck.models.registry import LoadedModel

POSITION_RULES = ("trigger_last", "last", "mean")
RESID_SITES = ("hook_resid_pre", "hook_resid_post")


@dataclass
class TokenizedBatch:
    input_ids: torch.Tensor        # [b, T], right padded
    attention_mask: torch.Tensor   # [b, T]
    last: torch.Tensor             # [b] index of the last real token
    trigger_last: torch.Tensor | None   # [b] index of the last token of the trigger span
    mean_mask: torch.Tensor        # [b, T] 1.0 on real tokens except the first


def context_length(model: LoadedModel) -> int | None:
    """The most positions the model can attend over (GPT-2: n_positions; Llama, Gemma: max_position_embeddings)."""
    config = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def tokenize(model: LoadedModel, texts: list[str], triggers: list[str] | None = None) -> TokenizedBatch:
    tok = model.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"{model.name}: trigger positions need a fast tokenizer (offset mapping)")
    enc = tok(list(texts), return_tensors="pt", padding=True, return_offsets_mapping=True,
              return_special_tokens_mask=True, padding_side="right")
    mask = enc["attention_mask"]
    lengths = mask.sum(1)
    if (lengths < 2).any():
        bad = int((lengths < 2).nonzero()[0, 0])
        raise DatasetError(f"prompt {texts[bad]!r} has fewer than 2 tokens; positions need at least two")
    limit = context_length(model)
    if limit is not None and int(lengths.max()) > limit:
        bad = int(lengths.argmax())
        raise DatasetError(
            f"prompt {texts[bad][:80]!r}... is {int(lengths[bad])} tokens long, more than {model.name}'s context of "
            f"{limit} tokens; shorten it or drop it from the prompt set")
    last = lengths - 1
    mean_mask = mask.clone().float()
    mean_mask[:, 0] = 0.0
    trig = None
    if triggers is not None:
        trig = torch.empty(len(texts), dtype=torch.long)
        offsets = enc["offset_mapping"]
        special = enc["special_tokens_mask"]
        for i, (text, trigger) in enumerate(zip(texts, triggers)):
            start = text.find(trigger)
            if start < 0 or not trigger:
                raise DatasetError(f"trigger {trigger!r} is not in the prompt {text!r}")
            end = start + len(trigger)
            hits = [j for j in range(int(lengths[i]))
                    if not special[i, j] and offsets[i, j, 0] < end and offsets[i, j, 1] > start]
            if not hits:
                raise DatasetError(f"no token of {model.name} covers the trigger {trigger!r} in {text!r}")
            trig[i] = hits[-1]
    return TokenizedBatch(enc["input_ids"], mask, last, trig, mean_mask)


def _reduce(hidden: torch.Tensor, batch: TokenizedBatch, rule: str) -> torch.Tensor:
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if rule == "last":
        return hidden[rows, batch.last.to(hidden.device)]
    if rule == "trigger_last":
        return hidden[rows, batch.trigger_last.to(hidden.device)]
    w = batch.mean_mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1)


def _validate(model: LoadedModel, positions, layers, sites, triggers):
    for p in positions:
        if p not in POSITION_RULES:
            raise ConfigError(f"unknown position rule {p!r}; one of {', '.join(POSITION_RULES)}")
    if "trigger_last" in positions and triggers is None:
        raise ConfigError("position 'trigger_last' needs the triggers of the prompts")
    for s in sites:
        if s not in RESID_SITES:
            raise ConfigError(f"extraction reads residual sites {RESID_SITES}; got {s!r}")
    layers = list(range(model.n_layers)) if layers is None else sorted(set(int(l) for l in layers))
    for layer in layers:
        check_layer(layer, model.n_layers)
    return layers


@timing.timed("extraction")
def extract_activations(
    model: LoadedModel,
    texts: list[str],
    triggers: list[str] | None = None,
    *,
    positions=("last",),
    layers=None,
    sites=RESID_SITES,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """{position rule: {'blocks.L.hook_resid_post': float32 CPU tensor [n_prompts, d_model]}}."""
    positions = tuple(positions)
    sites = tuple(sites)
    if len(texts) == 0:
        raise ConfigError("no prompts to extract activations for: pass at least one prompt text")
    if triggers is not None and len(triggers) != len(texts):
        raise ConfigError(f"{len(triggers)} triggers for {len(texts)} prompts: give one trigger per prompt (or none)")
    layers = _validate(model, positions, layers, sites, triggers)
    lm = model.lm
    blocks = resolve(lm, model.arch.layers)
    out = {p: {site_name(l, s): [] for l in layers for s in sites} for p in positions}
    bar = tqdm(total=len(texts), desc=f"extract {model.name}", unit="prompt", disable=not progress, leave=False)
    # Batches of similar length: in the dataset's order a batch of 16 pads to its longest prompt, a
    # third more tokens than the prompts have on the embedded dataset; sorted, about 1% more.
    # Padding is on the right and attention is causal, so a row's values do not depend on its batch
    # (up to GEMM rounding); the output is put back in the caller's order.
    lengths = [len(ids) for ids in model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        chunk = [texts[i] for i in rows]
        trig = [triggers[i] for i in rows] if triggers is not None else None
        batch = tokenize(model, chunk, trig)
        inputs = {"input_ids": batch.input_ids.to(model.device), "attention_mask": batch.attention_mask.to(model.device)}
        n_tok = int(batch.attention_mask.sum())   # real tokens; the pass stops after the last layer read
        timing.count(tokens=n_tok, flops=n_tok * token_flops(model, with_logits=False, blocks=max(layers) + 1))
        saved = {}
        with torch.no_grad(), lm.trace(inputs) as tracer:
            for layer in layers:
                for s in sites:
                    # Modules must be touched in execution order: a block's input before its output.
                    hidden = blocks[layer].input if s == "hook_resid_pre" else blocks[layer].output
                    if isinstance(hidden, tuple):  # older transformers return (hidden, ...) from blocks
                        hidden = hidden[0]
                    for p in positions:
                        saved[(p, site_name(layer, s))] = _reduce(hidden, batch, p).save()
            tracer.stop()
        for (p, name), value in saved.items():
            out[p][name].append(value.detach().float().cpu())
        bar.update(len(chunk))
    bar.close()
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return {p: {name: torch.cat(chunks)[back] for name, chunks in d.items()} for p, d in out.items()}


def hf_hidden_states(model: LoadedModel, texts: list[str], batch_size: int = 16) -> list[torch.Tensor]:
    """Reference: plain Hugging Face `output_hidden_states` at the last prompt token, one tensor per
    hidden state (index 0 = embeddings = resid_pre of block 0; index L+1 = resid_post of block L, except
    the last, which HF returns after the final norm)."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenize(model, list(texts[start:start + batch_size]))
        with torch.no_grad():
            res = model.model(input_ids=batch.input_ids.to(model.device),
                              attention_mask=batch.attention_mask.to(model.device), output_hidden_states=True)
        rows = torch.arange(batch.input_ids.shape[0])
        chunks.append([h[rows, batch.last].float().cpu() for h in res.hidden_states])
    return [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]
