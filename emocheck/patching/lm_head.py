"""The language-model head in vocabulary blocks: greedy next tokens and the log-probability of given
tokens without materialising a whole row of logits.

Gemma 3's 262k-token unembedding is about 60% of its forward FLOPs. One ``[rows, 262144]`` float32
block of logits is 200 MB per decode step (and ``log_softmax`` writes a second one), so the head ran
well below the GEMM rate. In blocks, Gemma's generation + fluency on 192 rows is 1.43x faster and
SmolLM2's 1.25x, with identical tokens (``python benchmarks/bench_engine_lever.py MODEL --lever
lm-head``; README). The blocks give the same values per logit up to GEMM rounding:
argmax keeps the first maximal index (a later block must be strictly larger), the log-partition is a
running ``logaddexp`` of the blocks' ``logsumexp`` and each target's logit is read from the block that
holds it, so tests/test_lm_head.py checks tokens and log-probabilities against the plain head.

The head is ``logits = hidden @ W.T (+ b)``, then Gemma's optional ``final_logit_softcapping``
(``tanh(x / c) * c``, applied per block). Every family in `emocheck.models.architectures` ends its
CausalLM forward that way; a head that is not an ``nn.Linear`` makes `VocabHead.of` return None and
the caller keeps the model's own forward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Vocabulary entries per block: the fastest of 4k-32k for a 192-row Gemma-shaped head in a one-off
#: sweep on the development machine (not kept as a benchmark; 4k-16k were within 10% of it).
VOCAB_BLOCK = 8192
#: Token rows per block in `log_probs` (1,024 x 8,192 float32 logits = 32 MB per block).
TOKEN_BLOCK = 1024


@dataclass
class VocabHead:
    weight: torch.Tensor                  # [vocab, hidden]
    bias: torch.Tensor | None
    softcap: float | None
    vocab_block: int = VOCAB_BLOCK

    @classmethod
    def of(cls, model, config=None) -> "VocabHead | None":
        head = model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            return None
        cfg = config if config is not None else model.config
        softcap = getattr(cfg, "final_logit_softcapping", None)
        if softcap is None and hasattr(cfg, "get_text_config"):
            softcap = getattr(cfg.get_text_config(), "final_logit_softcapping", None)
        return cls(head.weight, head.bias, float(softcap) if softcap else None, VOCAB_BLOCK)

    @property
    def vocab(self) -> int:
        return int(self.weight.shape[0])

    def _block(self, hidden: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        b = self.bias[start:stop] if self.bias is not None else None
        logits = torch.nn.functional.linear(hidden, self.weight[start:stop], b).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @torch.no_grad()
    def greedy(self, hidden: torch.Tensor, banned: torch.Tensor | None = None) -> torch.Tensor:
        """argmax over the vocabulary of each row of ``hidden`` [n, d]; ``banned`` token ids count as
        -inf (HF's min_new_tokens for the EOS ids). Returns [n] on hidden's device."""
        hidden = hidden.to(self.weight.device)
        best = idx = None
        for start in range(0, self.vocab, self.vocab_block):
            stop = min(self.vocab, start + self.vocab_block)
            logits = self._block(hidden, start, stop)
            if banned is not None and len(banned):
                local = banned[(banned >= start) & (banned < stop)] - start
                if len(local):
                    logits[:, local.to(logits.device)] = -math.inf
            m, i = logits.max(-1)
            if best is None:
                best, idx = m, i
            else:
                later = m > best                  # ties keep the earlier (smaller) index, as argmax does
                best = torch.where(later, m, best)
                idx = torch.where(later, i + start, idx)
        return idx

    @torch.no_grad()
    def log_probs(self, hidden: torch.Tensor, targets: torch.Tensor, token_block: int | None = None) -> torch.Tensor:
        """log softmax(head(hidden))[target] for each row: hidden [t, d], targets [t] -> float32 [t]."""
        token_block = token_block or TOKEN_BLOCK
        hidden = hidden.to(self.weight.device)
        targets = targets.to(self.weight.device)
        out = torch.empty(len(targets), dtype=torch.float32, device=self.weight.device)
        for s in range(0, len(targets), token_block):
            h, tgt = hidden[s:s + token_block], targets[s:s + token_block]
            log_z = None
            picked = torch.empty(len(tgt), dtype=torch.float32, device=h.device)
            for start in range(0, self.vocab, self.vocab_block):
                stop = min(self.vocab, start + self.vocab_block)
                logits = self._block(h, start, stop)
                part = torch.logsumexp(logits, -1)
                log_z = part if log_z is None else torch.logaddexp(log_z, part)
                here = ((tgt >= start) & (tgt < stop)).nonzero()[:, 0]
                if len(here):
                    picked[here] = logits[here, tgt[here] - start]
            out[s:s + token_block] = picked - log_z
        return out
