"""Read-out: does a late-layer emotion direction, read through the unembedding, favour the emotion's own
words over the other emotions' words?

    score(v) = mean_{t in own words} (W_U v)_t  -  mean_{t in other emotions' words} (W_U v)_t

for the unit direction v (no final norm: it is a nonlinear function of a whole residual vector, not of
a direction; the random directions below get the same linear read-out, so the comparison is fair).
The null is the same score for `draws` isotropic random unit directions (seeded). Word lists cover the
project's emotions; a word contributes the first token of each of its spellings (" word", "word",
" Word"), so multi-token words are read by their first piece.
"""
from __future__ import annotations

import numpy as np
import torch

from emocheck.errors import ConfigError
from emocheck.study import EMBEDDED

#: The embedded study's read-out words (emocheck.study); a study's own lists are passed as `words`.
EMOTION_WORDS = {e: list(d.readout_words) for e, d in EMBEDDED.items()}


def word_token_ids(tokenizer, words) -> list[int]:
    ids = set()
    for word in words:
        for spelling in (" " + word, word, " " + word.capitalize()):
            toks = tokenizer(spelling, add_special_tokens=False)["input_ids"]
            if toks:
                ids.add(int(toks[0]))
    return sorted(ids)


def unembedding(model) -> torch.Tensor:
    """[vocab, d_model] output embedding of a LoadedModel, float64 on the CPU."""
    return model.model.get_output_embeddings().weight.detach().double().cpu()


def readout_scores(w_u: torch.Tensor, directions: torch.Tensor, own: list[int], others: list[int]) -> np.ndarray:
    """score for each row of `directions` [k, d] (normalised here)."""
    d = directions.double()
    d = d / d.norm(dim=1, keepdim=True)
    # only the word tokens' logits: the whole [k, vocab] product was Gemma's 262k-token vocabulary times
    # a thousand null draws in float64 (about 17 s of a ci run)
    own, others = list(own), list(others)
    logits = d @ w_u[own + others].T                  # [k, len(own) + len(others)]
    return (logits[:, :len(own)].mean(1) - logits[:, len(own):].mean(1)).numpy()


def readout_test(model, direction: torch.Tensor, emotion: str, emotions: list[str], *, draws: int = 1000,
                 seed: int = 0, words: dict | None = None) -> dict:
    """Observed read-out score of `direction`, the null of random directions, and the top tokens.
    `words`: emotion -> read-out words (default the embedded study's; Study.design(e).readout_words)."""
    words = EMOTION_WORDS if words is None else {e: list(w) for e, w in words.items() if w}
    known = [e for e in emotions if e in words]
    if emotion not in words or len(known) < 2:
        raise ConfigError(f"no read-out word lists for {emotion!r} and another emotion; "
                          f"known: {', '.join(words)}")
    own = word_token_ids(model.tokenizer, words[emotion])
    others = sorted(set(i for e in known if e != emotion for i in word_token_ids(model.tokenizer, words[e]))
                    - set(own))
    w_u = unembedding(model)
    observed = float(readout_scores(w_u, direction[None], own, others)[0])
    gen = torch.Generator().manual_seed(seed)
    null = readout_scores(w_u, torch.randn(draws, w_u.shape[1], generator=gen, dtype=torch.float64), own, others)
    top = torch.topk(w_u @ (direction.double() / direction.double().norm()), 10).indices.tolist()
    return {"observed": observed, "null": null, "own_tokens": own, "other_tokens": others,
            "top_tokens": [model.tokenizer.decode([t]) for t in top],
            "rank_among_random": int(1 + np.sum(null >= observed))}
