"""Fluency of generated continuations: perplexity under the UNPATCHED model, and repetition.

A random direction that turns text into gibberish also moves the evaluators, so every patching
condition reports these beside its scores (see emocheck.patching.experiment for how claims control
for them).

* `continuation_nll`: mean negative log-likelihood (nats/token) of each row's generated tokens (up to
  and including its EOS) given its prompt, under the model with no patch. Teacher-forced, with the
  same left padding and mask-derived position ids as generation; only the continuation positions go
  through the LM head (Gemma's 262k-token head on every position would cost GBs). `ppl = exp(nll)`.
* `distinct_n`: unique word n-grams / all word n-grams of the continuation (1 = no repetition).
* `repeated_ngram_fraction`: fraction of word n-grams that already occurred earlier in the same text
  ("thank thank thank" -> high).
Words are lower-cased `\\w+` runs and single punctuation marks, so the measures are model-independent.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch

from emocheck import timing

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Unique n-grams / n-grams (NaN when the text has fewer than n words)."""
    grams = ngrams(words(text), n)
    return len(set(grams)) / len(grams) if grams else float("nan")


def repeated_ngram_fraction(text: str, n: int = 3) -> float:
    """Fraction of n-grams that repeat an earlier n-gram of the same text (NaN if too short)."""
    grams = ngrams(words(text), n)
    if not grams:
        return float("nan")
    seen, repeats = set(), 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def continuation_nll(loaded, input_ids: torch.Tensor, attention_mask: torch.Tensor, new_tokens: torch.Tensor,
                     lengths: torch.Tensor, max_logit_elements: float = 6e7) -> np.ndarray:
    """Mean NLL per generated token of each row under the unpatched model ([B] float64, nats).

    input_ids/attention_mask: the left-padded prompts used for generation; new_tokens [B, T] with
    `lengths` valid tokens per row (the rest are pads after EOS and are masked out).
    """
    batch, steps = new_tokens.shape
    if steps == 0:
        return np.full(batch, np.nan)
    dev = loaded.device
    valid = torch.arange(steps)[None, :] < lengths[:, None].cpu()
    ids = torch.cat([input_ids.cpu(), new_tokens.cpu()], 1)
    mask = torch.cat([attention_mask.cpu(), valid.long()], 1)
    vocab = int(getattr(loaded.config, "vocab_size", 50000))
    chunk = max(1, int(max_logit_elements // (vocab * (steps + 1))))
    out = np.empty(batch, dtype=np.float64)
    with torch.no_grad():
        for s in range(0, batch, chunk):
            e = min(batch, s + chunk)
            m = mask[s:e].to(dev)
            pos = (m.cumsum(-1) - 1).clamp(min=0)
            logits = loaded.model(input_ids=ids[s:e].to(dev), attention_mask=m, position_ids=pos,
                                  logits_to_keep=steps + 1, use_cache=False).logits
            logits = logits[:, :steps].float()                  # position P-1+t predicts new token t
            logp = torch.log_softmax(logits, -1)
            target = new_tokens[s:e].to(dev)
            tok_lp = logp.gather(-1, target[..., None])[..., 0]
            v = valid[s:e].to(dev)
            nll = -(tok_lp * v).sum(1) / v.sum(1).clamp(min=1)
            out[s:e] = nll.double().cpu().numpy()
    return out


def fluency_table(loaded, result) -> pd.DataFrame:
    """Per-row fluency of a GenerationResult: nll, ppl, distinct-2, repeated-3-gram fraction, length."""
    # The fast engine scores on its shared prefix cache; valid only for the prompts it generated from
    # (a caller may swap in other prompts, e.g. neutral ones for prefixed conditions).
    nll = result.meta.get("continuation_nll")
    scored_on = result.meta.get("continuation_nll_input_ids")
    if nll is not None and (scored_on is None or not torch.equal(scored_on, result.input_ids.cpu())):
        nll = None
    if nll is None:
        with timing.phase("fluency", model=getattr(loaded, "name", None)):
            nll = continuation_nll(loaded, result.input_ids, result.attention_mask, result.new_tokens, result.lengths)
    return pd.DataFrame({
        "nll": nll,
        "ppl": np.exp(nll),
        "distinct2": [distinct_n(t, 2) for t in result.texts],
        "rep3": [repeated_ngram_fraction(t, 3) for t in result.texts],
        "n_tokens": result.lengths.numpy().astype(int),
        "hit_eos": result.hit_eos.numpy().astype(bool),
        "n_words": [len(words(t)) for t in result.texts],
    })


def perplexity_of_texts(loaded, prompts: list[str], continuations: list[str]) -> np.ndarray:
    """Convenience for notebooks: perplexity of text continuations (re-tokenised) given prompts."""
    from emocheck.patching.residual import tokenize_prompts

    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    tok = loaded.tokenizer
    enc = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
    steps = max(1, max(len(e) for e in enc))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    new = torch.full((len(enc), steps), pad, dtype=torch.long)
    for i, e in enumerate(enc):
        new[i, : len(e)] = torch.tensor(e, dtype=torch.long)
    lengths = torch.tensor([len(e) for e in enc])
    return np.exp(continuation_nll(loaded, input_ids, attention_mask, new, lengths))


def finite_mean(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan
