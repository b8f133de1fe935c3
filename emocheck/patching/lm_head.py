"""The language-model head in vocabulary blocks: greedy next tokens and the log-probability of given
tokens without materialising a whole row of logits.

Gemma 3's 262k-token unembedding is about 60% of its forward FLOPs. One ``[rows, 262144]`` float32
block of logits is 200 MB per decode step (and ``log_softmax`` writes a second one), so the head ran
well below the GEMM rate. In blocks, Gemma's generation + fluency on 192 rows is 1.43x faster and
SmolLM2's 1.25x, with identical tokens (``python benchmarks/bench_engine_lever.py MODEL --lever
lm-head``; docs/benchmarks.md). The blocks give the same values per logit up to GEMM rounding:
argmax keeps the first maximal index (a later block must be strictly larger), the log-partition is a
running ``logaddexp`` of the blocks' ``logsumexp`` and each target's logit is read from the block that
holds it, so tests/test_lm_head.py checks tokens and log-probabilities against the plain head.

The head is ``logits = hidden @ W.T (+ b)``, then Gemma's optional ``final_logit_softcapping``
(``tanh(x / c) * c``, applied per block). Every family in `emocheck.models.architectures` ends its
CausalLM forward that way; a head that is not an ``nn.Linear`` makes `VocabHead.of` return None and
the caller keeps the model's own forward.

**Greedy tokens screened in bfloat16, decided in float32.** On this CPU a bfloat16 GEMM of the head's
shape runs 2-3x faster than float32. `greedy` computes each block's logits in bfloat16 and keeps, per
row, only the tokens that a rigorous error bound cannot rule out as the float32 argmax; the float32
logits of those few candidates (11 per row of 262,144 on 192 of Gemma's decode states) pick the token. The
bound, per row i and token j (u = 2^-8, bfloat16's unit roundoff; gamma = K 2^-24 for a float32 sum of
K products, any order): the bfloat16 inputs are within u of the float32 ones, so
``|x~.w~ - x.w| <= (2u + u^2) sum_k |x_k w_jk| <= (2u + u^2) ||x|| ||w_j||`` (Cauchy-Schwarz); the
float32 accumulation adds gamma times that sum, and rounding the output to bfloat16 adds u/(1-u) of
its magnitude, itself at most (1+u)^3 ||x|| ||w_j||. The float32 logits the exact path computes are
within gamma ||x|| ||w_j|| of the true ones. So if B is the bfloat16 logit and E_i the sum of these
bounds (with the largest ||w_j||), the float32 argmax j* has ``B_ij* >= max_k B_ik - 2 E_i``: every
such token is a candidate, and no other token can be the argmax (the candidates' float32 logits are
dot products, equal to the GEMM's up to float32 rounding, as the blocks already are).
tests/test_lm_head.py checks the bound on random values and the tokens against the float32 blocks,
ties, near-ties and banned ids included. The screen runs only where it is exact by that argument and
pays (`SCREEN_MIN_VOCAB`): a float32 head without bias or softcap (Gemma 3, Llama 3 and Qwen 3 heads
have neither) and a vocabulary of 100k or more; otherwise, or if the candidates are too many (all
logits nearly equal), `greedy` computes every block in float32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Vocabulary entries per block. Gemma's 262,144 x 640 float32 head on 192 real decode states ran at
#: 154 GFLOP/s in blocks of 2,048 and 116 in blocks of 8,192 on the 2-core machine of the seed-scale
#: issue (512-2,048 within 3% of each other): `python benchmarks/bench_lm_head.py gemma3-270m`.
VOCAB_BLOCK = 2048
#: bfloat16's unit roundoff (8 significant bits) and float32's.
_U_BF16, _U_F32 = 2.0 ** -8, 2.0 ** -24
#: Above this many screened candidates per row on average, `greedy` computes the blocks in float32.
_MAX_CANDIDATES_PER_ROW = 64
#: The screen only pays for large vocabularies: on 192 real decode states it made Gemma 3's 262k-token
#: greedy head 1.59x faster and SmolLM2's 49k-token head 1.01x (`python benchmarks/bench_lm_head.py
#: MODEL`, the screen forced on for SmolLM2 in a one-off run: 0.97-0.99x), where the per-block
#: selection costs as much as the float32 GEMM it saves.
SCREEN_MIN_VOCAB = 100_000
#: Token rows per block in `log_probs` (1,024 x 2,048 float32 logits = 8 MB per block).
TOKEN_BLOCK = 1024


@dataclass
class VocabHead:
    weight: torch.Tensor                  # [vocab, hidden]
    bias: torch.Tensor | None
    softcap: float | None
    vocab_block: int = VOCAB_BLOCK
    #: screen greedy tokens in bfloat16 where that is exact (module doc); False: float32 blocks only
    screen: bool = True
    _module: torch.nn.Module | None = None
    last_candidates: int | None = None

    @classmethod
    def of(cls, model, config=None) -> "VocabHead | None":
        head = model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            return None
        cfg = config if config is not None else model.config
        softcap = getattr(cfg, "final_logit_softcapping", None)
        if softcap is None and hasattr(cfg, "get_text_config"):
            softcap = getattr(cfg.get_text_config(), "final_logit_softcapping", None)
        out = cls(head.weight, head.bias, float(softcap) if softcap else None, VOCAB_BLOCK)
        out._module = head
        return out

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
        if self._screens(hidden):
            idx = self._greedy_screened(hidden, banned)
            if idx is not None:
                return idx
        return self._greedy_float32(hidden, banned)

    def _screens(self, hidden: torch.Tensor) -> bool:
        return (self.screen and self.vocab >= SCREEN_MIN_VOCAB and self.bias is None and not self.softcap and self.weight.dtype == torch.float32
                and hidden.dtype == torch.float32 and len(hidden) > 0 and bool(torch.isfinite(hidden).all()))

    def _bf16_weight(self) -> tuple[torch.Tensor, float]:
        """The head's weight in bfloat16 and its largest row norm, kept on the head module for the
        model's lifetime (refreshed if the weight is replaced or changed in place)."""
        w = self.weight
        key = (w.data_ptr(), w._version, tuple(w.shape))
        owner = self._module if self._module is not None else self
        memo = getattr(owner, "_emocheck_bf16_head", None)
        if memo is None or memo[0] != key:
            memo = (key, w.detach().to(torch.bfloat16), float(w.detach().norm(dim=1).max()))
            owner._emocheck_bf16_head = memo
        return memo[1], memo[2]

    def _greedy_screened(self, hidden: torch.Tensor, banned: torch.Tensor | None) -> torch.Tensor | None:
        """The float32 argmax by the bfloat16 screen (module doc); None if the candidates are too many."""
        w16, w_norm = self._bf16_weight()
        n, k = hidden.shape
        h16 = hidden.to(torch.bfloat16)
        u = _U_BF16
        gamma = k * _U_F32 / (1 - k * _U_F32)
        # E_i (module doc), fixed before the first block so that the running threshold only rises:
        # the bfloat16 inputs, the float32 sum in either path, and the output rounding of a logit
        # whose magnitude is at most ||x~|| ||w~_j|| <= (1 + u)^2 ||x|| ||w_j||.
        norms = hidden.norm(dim=1) * w_norm
        bound = (2 * u + u * u + gamma * (1 + u) ** 2 + gamma + u / (1 - u) * (1 + u) ** 3) * norms
        best = torch.full((n,), -math.inf, device=hidden.device)
        kept_rows, kept_cols = [], []
        cap = _MAX_CANDIDATES_PER_ROW * n + 4096
        n_kept = 0
        for start in range(0, self.vocab, self.vocab_block):
            stop = min(self.vocab, start + self.vocab_block)
            b = torch.nn.functional.linear(h16, w16[start:stop]).float()
            if banned is not None and len(banned):
                local = banned[(banned >= start) & (banned < stop)] - start
                if len(local):
                    b[:, local.to(b.device)] = -math.inf
            best = torch.maximum(best, b.max(-1).values)
            # the float32 argmax j* has B_j* >= max_k B_k - 2 E: keep what the running maximum allows
            # (it only rises, so nothing dropped here can pass the final threshold)
            r, c = (b >= (best - 2 * bound)[:, None]).nonzero(as_tuple=True)
            n_kept += len(r)
            if n_kept > cap:
                return None
            kept_rows.append(r)
            kept_cols.append(c + start)
        if not bool(torch.isfinite(best).all()):
            return None                       # a row with every token banned: let the float32 path decide
        rows, cols = torch.cat(kept_rows), torch.cat(kept_cols)
        self.last_candidates = len(rows)      # read by benchmarks/bench_lm_head.py
        exact = (hidden[rows] * self.weight[cols]).sum(-1)
        top = torch.full((n,), -math.inf, device=hidden.device).scatter_reduce(0, rows, exact, "amax")
        first = torch.full((n,), self.vocab, dtype=torch.long, device=hidden.device)
        at_top = exact == top[rows]
        # ties keep the earliest index, as argmax does
        return first.scatter_reduce(0, rows[at_top], cols[at_top], "amin")

    def _greedy_float32(self, hidden: torch.Tensor, banned: torch.Tensor | None) -> torch.Tensor:
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
