"""The fast greedy engine behind `generate_patched`: shared prompt prefixes, dropped rows, fluency on
the shared cache. Same tokens as the nnsight implementation (tests/test_engine.py).

Phase 5 generates every condition on every prompt, and all conditions of a prompt see the SAME
tokens before the patched position: the patch lands on the last prompt token at step 0 (unless
``patch_prompt=True``) and on generated tokens after it. So, per batch of rows:

1. **Prefix once per prompt.** The prompt minus its last token is run once per distinct prompt
   (unpatched) into a KV cache, which every row of that prompt then copies (`index_select`).
2. **Greedy decoding over the rows**: step 0 feeds each row's last prompt token (or, with
   ``patch_prompt=True``, the whole prompt, since then every prompt position is patched), later steps
   feed the previous token; the patch is the same precomputed delta as in the nnsight and hook
   implementations, added by a forward hook on the patched block. Rows that emitted EOS leave the
   batch (their cache rows are dropped), so late steps cost only the rows still running.
3. **Fluency NLL on the shared prefix.** The continuation's NLL under the UNPATCHED model needs the
   unpatched prompt, which is exactly the shared prefix cache plus the last prompt token: one
   teacher-forced pass over [last prompt token, continuation[:-1]] per row, instead of a second
   forward over prompt + continuation. The LM head runs in row chunks so Gemma's 262k-token
   vocabulary never asks for more than ``max_logit_elements`` logits at once.
4. **Sorted batches.** Distinct prompts are sorted by length and their rows packed into batches of
   at most ``max_rows`` (all conditions of a prompt stay together), so little padding is computed.

Numerics: position ids and masks are derived from the attention mask exactly as in Hugging Face
``generate``; with bfloat16 (or float16) weights the delta is added in float32 and rounded once
(``h = (h.float() + delta).to(h.dtype)``), for float32 models that is the plain ``h += delta``. A
different batch composition (the sorting) can change results by float rounding only; the tests prove
token equality with the nnsight and hook implementations on every tiny family, and
``benchmarks/bench_study.py`` reports the agreement on the real models. Sampling (``do_sample``) is
not handled here: `generate_patched` then uses the nnsight implementation.

Other interventions (``intervention=``): any object with ``shares_prefix`` (may step 0 feed only the
last prompt token?), ``set_step(step, rows, prompt_mask)`` (called before every forward with the
design-row indices of the rows still running; ``prompt_mask`` is the step-0 attention mask when the
whole prompt is fed, else None) and ``close()``. Head-level patches use it
(`emocheck.heads.fast_generation`).
"""
from __future__ import annotations

import copy
import functools
import math

import numpy as np
import torch

from emocheck import timing
from emocheck.compute import token_flops
from emocheck.patching.lm_head import VocabHead
from emocheck.errors import ConfigError
from emocheck.patching.residual import (GenerationResult, PatchSpec, eos_ids, finish, generate_patched_nnsight,
                                        prepare_directions, prompt_deltas, remote_setting, step_deltas,
                                        tokenize_prompts)

#: Rows per batch on a CPU when the caller does not say (decode is memory-bound below ~64 rows).
CPU_MAX_ROWS = 192


def default_max_rows(loaded, new_tokens: int = 30, prompt_tokens: int = 48) -> int:
    """Rows per batch: CPU_MAX_ROWS on CPUs; on CUDA as many as a third of the free memory holds
    (KV cache of prompt + continuation per row, plus one row of float32 logits)."""
    dev = torch.device(loaded.device)
    if dev.type != "cuda":
        return CPU_MAX_ROWS
    free, _ = torch.cuda.mem_get_info(dev)
    return rows_for_memory(loaded, free / 3, new_tokens, prompt_tokens)


def rows_for_memory(loaded, budget_bytes: float, new_tokens: int, prompt_tokens: int) -> int:
    cfg = loaded.config
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or loaded.n_heads)
    elem = torch.finfo(loaded.dtype).bits // 8
    kv_per_row = 2 * loaded.n_layers * n_kv * loaded.head_dim * (prompt_tokens + new_tokens) * elem
    logits_per_row = 4 * int(getattr(cfg, "vocab_size", 50000)) * 2
    return int(max(1, min(4096, budget_bytes // (kv_per_row + logits_per_row))))


def _new_cache(loaded):
    from transformers import DynamicCache

    config = loaded.model.config
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    return DynamicCache(config=config)


def _copy_rows(cache, index: torch.Tensor):
    """A new cache holding rows `index` of `cache` (which stays untouched)."""
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        dup = copy.copy(layer)
        if getattr(layer, "is_initialized", False) and layer.keys is not None and layer.keys.numel():
            dup.keys = layer.keys.index_select(0, index)
            dup.values = layer.values.index_select(0, index)
        new.layers.append(dup)
    return new


class _ReservedKV:
    """Mixin for a filled HF cache layer: its keys/values live in a buffer with room for more
    positions and `update` writes new positions in place. HF's DynamicLayer concatenates the whole
    cache on every decode step (``torch.cat([keys, new], -2)``), which copies O(length) per step and
    layer (the largest self time under the torch profiler on SmolLM2 at 192 rows, though the profiler
    inflates it; without it generation is 1.14x faster, benchmarks/bench_engine_lever.py). ``keys`` and
    ``values`` stay views of the filled positions, so attention and the mask sizes see exactly what
    the concatenating layer gives."""

    def _reserve(self, capacity: int) -> None:
        batch, heads, length, dim = self.keys.shape
        kbuf = self.keys.new_empty(batch, heads, max(capacity, length), dim)
        vbuf = self.values.new_empty(batch, heads, max(capacity, length), self.values.shape[-1])
        kbuf[:, :, :length] = self.keys
        vbuf[:, :, :length] = self.values
        self._kbuf, self._vbuf, self._filled = kbuf, vbuf, length
        self._views()

    def _views(self) -> None:
        self.keys = self._kbuf[:, :, :self._filled]
        self.values = self._vbuf[:, :, :self._filled]

    def update(self, key_states, value_states, *args, **kwargs):
        n = key_states.shape[-2]
        if self._filled + n > self._kbuf.shape[2]:            # past the reservation: a larger buffer
            if getattr(self, "is_sliding", False):
                # a sliding window would start to cut here, which this layer does not model
                raise RuntimeError("reserved sliding-window cache layer filled past its reservation")
            self._reserve(2 * (self._filled + n))
        self._kbuf[:, :, self._filled:self._filled + n] = key_states
        self._vbuf[:, :, self._filled:self._filled + n] = value_states
        self._filled += n
        if hasattr(self, "cumulative_length"):               # sliding layers count positions themselves
            self.cumulative_length += n
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices):
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._views()


@functools.lru_cache(maxsize=None)
def _reserved_class(cls):
    return type(f"Reserved{cls.__name__}", (_ReservedKV, cls), {})


def _reserve(cache, extra: int):
    """Give every filled layer of `cache` room for `extra` more positions (in place; returns `cache`).
    Only plain dynamic layers and sliding-window ones whose window the run cannot reach are replaced
    (the others keep HF's behaviour), so what attention sees never changes."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    for i, layer in enumerate(cache.layers):
        if not (getattr(layer, "is_initialized", False) and layer.keys is not None and layer.keys.dim() == 4):
            continue
        cls = type(layer)
        length = layer.keys.shape[-2]
        if cls is DynamicSlidingWindowLayer:
            if layer.cumulative_length != length or length + extra > layer.sliding_window - 1:
                continue
        elif cls is not DynamicLayer:
            continue
        new = object.__new__(_reserved_class(cls))
        new.__dict__.update(layer.__dict__)
        new._reserve(length + extra)
        cache.layers[i] = new
    return cache


def cache_kwarg(module) -> str:
    """The name of `module.forward`'s KV-cache argument: transformers >= 5 names it `cache`
    (`past_key_values` is deprecated)."""
    return _cache_kw_of(type(module))


def returned_cache(out):
    """The KV cache a forward returned (`cache` or, before transformers 5, `past_key_values`)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


@functools.lru_cache(maxsize=None)
def _cache_kw_of(cls) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def _positions(mask: torch.Tensor, last: int) -> torch.Tensor:
    pos = mask.long().cumsum(-1) - 1
    pos = pos.masked_fill(mask == 0, 1)
    return pos[:, -last:]


def _left_pad(seqs: list[torch.Tensor], pad: int, length: int | None = None):
    length = max((len(s) for s in seqs), default=0) if length is None else length
    ids = torch.full((len(seqs), length), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, length - len(s):] = s
            mask[i, length - len(s):] = 1
    return ids, mask


class _Patcher:
    """Forward hooks on the patched blocks; `deltas` is what the current step adds (or None)."""

    def __init__(self, loaded, spec: PatchSpec):
        self.deltas: dict | None = None        # {layer: [R, d] (last position) or [R, P, d] (every position)}
        self.handles = []
        for layer in spec.layers:
            module = loaded.layer_module(layer)
            if spec.site == "hook_resid_pre":
                def pre(mod, args, kwargs, _layer=layer):
                    self._apply(_layer, args[0] if args else kwargs["hidden_states"])
                self.handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            else:
                def post(mod, args, output, _layer=layer):
                    self._apply(_layer, output[0] if isinstance(output, tuple) else output)
                self.handles.append(module.register_forward_hook(post))

    def _apply(self, layer: int, h: torch.Tensor) -> None:
        if self.deltas is None:
            return
        d = self.deltas[layer]
        target = h if d.dim() == 3 else h[:, -1]
        if h.dtype == torch.float32:
            target += d
        else:       # low-precision weights: add in float32, round once
            target.copy_((target.float() + d).to(h.dtype))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _batches(groups: list[list[int]], lengths: list[int], max_rows: int) -> list[list[int]]:
    """Pack prompt groups (rows of one distinct prompt), longest prompt first, into row batches."""
    order = sorted(range(len(groups)), key=lambda g: (-lengths[g], g))
    out, cur = [], []
    for g in order:
        rows = groups[g]
        for s in range(0, len(rows), max_rows):
            part = rows[s:s + max_rows]
            if cur and len(cur) + len(part) > max_rows:
                out.append(cur)
                cur = []
            cur = cur + part
    if cur:
        out.append(cur)
    return out


def generate_fast(loaded, prompts: list[str], spec: PatchSpec, directions=None, *, score_fluency: bool = True,
                  max_rows: int | None = None, max_logit_elements: float = 6e7, intervention=None) -> GenerationResult:
    """Greedy patched generation (see module doc). `result.meta["continuation_nll"]` holds the
    fluency NLL per row when `score_fluency`; `result.meta["tokens"]` counts the tokens processed.
    `intervention` is a per-row intervention other than a residual direction (module doc)."""
    spec.validate(loaded.n_layers)
    if intervention is not None and directions is not None:
        raise ValueError("generate_fast: give residual directions or another intervention, not both")
    if spec.do_sample:
        raise ValueError("generate_fast is greedy only; generate_patched routes sampling to nnsight")
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    n_rows = input_ids.shape[0]
    ids_cpu, mask_cpu = input_ids.cpu(), attention_mask.cpu().bool()
    row_ids = [ids_cpu[i][mask_cpu[i]] for i in range(n_rows)]
    patch = directions is not None
    dirs = prepare_directions(loaded, spec, directions, n_rows) if patch else None
    if dirs is not None:
        dirs = {layer: v.float() for layer, v in dirs.items()}
    share = not (patch and spec.patch_prompt) and (intervention is None or intervention.shares_prefix)
    groups: dict[tuple, list[int]] = {}
    for i, ids in enumerate(row_ids):
        groups.setdefault(tuple(ids.tolist()), []).append(i)
    keys = list(groups)
    batches = _batches([groups[k] for k in keys], [len(k) for k in keys], max_rows or default_max_rows(loaded, spec.max_new_tokens))
    eos = sorted(eos_ids(loaded))
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    new_tokens = torch.full((n_rows, spec.max_new_tokens), pad, dtype=torch.long)
    done_at = torch.full((n_rows,), spec.max_new_tokens, dtype=torch.long)
    nll = np.full(n_rows, np.nan)
    counts = {"prefix": 0, "decode": 0, "scoring": 0, "rows": n_rows, "distinct_prompts": len(keys)}
    patcher = _Patcher(loaded, spec) if patch else intervention
    try:
        with torch.no_grad():
            for rows in batches:
                _run_batch(loaded, spec, rows, row_ids, dirs, share, eos, pad, new_tokens, done_at, nll, counts,
                           patcher, score_fluency, max_logit_elements)
    finally:
        if patcher is not None:
            patcher.close()
    steps = int(done_at.max()) if n_rows else 0
    seqs = torch.cat([ids_cpu, new_tokens[:, :steps]], 1)
    meta = {"impl": "prefix-cache", "tokens": counts, "batch_rows": batches}
    if score_fluency:
        meta["continuation_nll"] = nll
        meta["continuation_nll_input_ids"] = ids_cpu
    return finish(loaded, prompts, input_ids, attention_mask, seqs, spec, meta)


def _run_batch(loaded, spec, rows, row_ids, dirs, share, eos, pad, new_tokens, done_at, nll, counts, patcher,
               score_fluency, max_logit_elements):
    dev = loaded.device
    model = loaded.model
    vocab_head = VocabHead.of(model, loaded.config)
    rows_t = torch.tensor(rows, dtype=torch.long)
    distinct, row_to_u = {}, []
    for r in rows:
        key = tuple(row_ids[r].tolist())
        row_to_u.append(distinct.setdefault(key, len(distinct)))
    u_ids = [torch.tensor(k, dtype=torch.long) for k in distinct]
    row_to_u = torch.tensor(row_to_u, dtype=torch.long, device=dev)
    # 1. The unpatched prefix (prompt minus its last token) once per distinct prompt.
    pre_ids, pre_mask = _left_pad([u[:-1] for u in u_ids], pad)
    pre_ids, pre_mask = pre_ids.to(dev), pre_mask.to(dev)
    prefix = _new_cache(loaded)
    if pre_ids.shape[1]:
        n_pre = int(pre_mask.sum())
        with timing.phase("generation", model=loaded.name, tokens=n_pre, part="prefix",
                          flops=n_pre * token_flops(loaded, with_logits=False)):
            model(input_ids=pre_ids, attention_mask=pre_mask, position_ids=_positions(pre_mask, pre_ids.shape[1]),
                  use_cache=True, logits_to_keep=1, **{cache_kwarg(model): prefix})
        counts["prefix"] += int(pre_mask.sum())
    last_tok = torch.stack([u[-1] for u in u_ids]).to(dev)[row_to_u]
    row_pre_mask = pre_mask[row_to_u]
    # 2. Greedy decoding, finished rows dropped.
    with timing.phase("generation", model=loaded.name) as timed:
        if share:
            cache = _reserve(_copy_rows(prefix, row_to_u), spec.max_new_tokens + 1)
            mask = torch.cat([row_pre_mask, torch.ones_like(last_tok)[:, None]], 1)
            inp = last_tok[:, None]
        else:
            cache = _new_cache(loaded)
            inp, mask = _left_pad([row_ids[r] for r in rows], pad)
            inp, mask = inp.to(dev), mask.to(dev)
        step_d = step_deltas(spec, dirs) if dirs is not None else {}
        p_d = prompt_deltas(spec, {k: v[rows_t.to(v.device)] for k, v in dirs.items()}, mask) if dirs is not None else None
        active = torch.arange(len(rows), device=dev)
        eos_t = torch.tensor(eos, dtype=torch.long, device=dev)
        n_decode = 0
        for step in range(spec.max_new_tokens):
            if dirs is None and patcher is not None:
                patcher.set_step(step, rows_t.to(dev)[active], mask if (step == 0 and not share) else None)
            elif patcher is not None:
                if step == 0 and p_d is not None:
                    patcher.deltas = p_d
                elif step in step_d:
                    sel = rows_t.to(dev)[active]
                    patcher.deltas = {k: v[sel.to(v.device)] for k, v in step_d[step].items()}
                else:
                    patcher.deltas = None
            if vocab_head is not None:
                hidden = model.base_model(input_ids=inp, attention_mask=mask, position_ids=_positions(mask, inp.shape[1]),
                                          use_cache=True, **{cache_kwarg(model.base_model): cache}).last_hidden_state
                # HF min_new_tokens = max_new_tokens: the EOS ids cannot be chosen.
                nxt = vocab_head.greedy(hidden[:, -1], banned=None if spec.stop_at_eos else eos_t).to(dev)
            else:
                out = model(input_ids=inp, attention_mask=mask, position_ids=_positions(mask, inp.shape[1]),
                            use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})
                logits = out.logits[:, -1, :].float()
                if not spec.stop_at_eos and len(eos):
                    logits[:, eos_t] = -math.inf
                nxt = logits.argmax(-1).to(dev)        # a device-mapped model's head may sit elsewhere
            n_decode += int(mask[:, -inp.shape[1]:].sum())
            new_tokens[rows_t[active.cpu()], step] = nxt.cpu()
            if step + 1 == spec.max_new_tokens:
                break
            finished = torch.isin(nxt, eos_t) if (spec.stop_at_eos and len(eos)) else torch.zeros_like(nxt, dtype=torch.bool)
            if finished.any():
                done_at[rows_t[active[finished].cpu()]] = step + 1
                keep = (~finished).nonzero()[:, 0]
                if not len(keep):
                    break
                active, nxt, mask = active[keep], nxt[keep], mask[keep]
                cache.batch_select_indices(keep)
            mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
            inp = nxt[:, None]
        if dirs is None and patcher is not None:
            patcher.set_step(-1, active, None)              # off for the fluency pass
        elif patcher is not None:
            patcher.deltas = None
        timed["tokens"] = n_decode
        timed["flops"] = n_decode * token_flops(loaded)
        counts["decode"] += n_decode
        del cache
    if not score_fluency:
        return
    # 3. Fluency NLL under the unpatched model on the shared prefix. It depends only on the prompt and
    # the continuation, so rows that generated the same continuation of the same prompt are scored
    # once (about 9% of the tokens of phase 5's claim rows and a third of its sweep's in a ci run).
    with timing.phase("fluency", model=loaded.name) as timed:
        all_lengths = done_at[rows_t]
        firsts, inverse, first_rows = {}, [], []
        for k, r in enumerate(rows):
            key = (int(row_to_u[k]), tuple(new_tokens[r, :int(all_lengths[k])].tolist()))
            if key not in firsts:
                firsts[key] = len(first_rows)
                first_rows.append(k)
            inverse.append(firsts[key])
        uniq, inverse = torch.tensor(first_rows, dtype=torch.long), torch.tensor(inverse, dtype=torch.long)
        lengths = all_lengths[uniq]
        steps = int(lengths.max())
        cont = new_tokens[rows_t[uniq], :steps].to(dev)
        valid = (torch.arange(steps)[None, :] < lengths[:, None]).to(dev)
        u_dev = uniq.to(dev)
        inp = torch.cat([last_tok[u_dev][:, None], cont[:, :-1]], 1)
        mask = torch.cat([row_pre_mask[u_dev], torch.ones_like(last_tok[u_dev])[:, None], valid[:, :-1].long()], 1)
        cache = _copy_rows(prefix, row_to_u[u_dev])
        counts["scored_rows"] = counts.get("scored_rows", 0) + len(uniq)
        hidden = model.base_model(input_ids=inp, attention_mask=mask, position_ids=_positions(mask, steps),
                                  use_cache=True, **{cache_kwarg(model.base_model): cache}).last_hidden_state
        timed["tokens"] = int(mask[:, -steps:].sum())
        timed["flops"] = timed["tokens"] * token_flops(loaded)
        counts["scoring"] += timed["tokens"]
        cont, valid = cont.to(hidden.device), valid.to(hidden.device)
        if vocab_head is not None:
            # Only the valid continuation tokens, in vocabulary blocks (emocheck.patching.lm_head).
            tok_lp = torch.zeros(valid.shape, dtype=torch.float32, device=hidden.device)
            tok_lp[valid] = vocab_head.log_probs(hidden[valid], cont[valid]).to(hidden.device)
            v = valid.float()
            val = -(tok_lp * v).sum(1) / v.sum(1).clamp(min=1)
            nll[rows] = val.double().cpu().numpy()[inverse.numpy()]
            return
        head = model.get_output_embeddings()
        softcap = getattr(loaded.config, "final_logit_softcapping", None)
        vocab = int(head.weight.shape[0])
        chunk = max(1, int(max_logit_elements // (vocab * steps)))
        scored = np.empty(len(uniq))
        for s in range(0, len(uniq), chunk):
            e = min(len(uniq), s + chunk)
            logits = head(hidden[s:e]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            logp = torch.log_softmax(logits, -1)
            tok_lp = logp.gather(-1, cont[s:e, :, None])[..., 0]
            v = valid[s:e]
            scored[s:e] = (-(tok_lp * v).sum(1) / v.sum(1).clamp(min=1)).double().cpu().numpy()
        nll[rows] = scored[inverse.numpy()]


ENGINES = ("auto", "fast", "nnsight")


def generate_patched(loaded, prompts: list[str], spec: PatchSpec, directions=None, *, engine: str | None = None,
                     max_rows: int | None = None) -> GenerationResult:
    """Patched generation: `directions` is a tensor [d] or [B, d] (or {layer: tensor}); None or
    alpha == 0 means no patch.

    ``engine`` (default ``$EMOCHECK_GENERATION_ENGINE``, else ``auto``): ``fast`` is the greedy engine
    of `emocheck.patching.engine` (shared prompt prefix, dropped rows, the fluency NLL computed on the
    shared prefix into ``meta["continuation_nll"]``), token-identical to ``nnsight`` (tests); ``nnsight``
    is nnsight's generation interventions (`generate_patched_nnsight`); ``auto`` uses ``fast`` for
    greedy decoding and ``nnsight`` for sampling.
    """
    import os

    engine = engine or os.environ.get("EMOCHECK_GENERATION_ENGINE") or "auto"
    if engine not in ENGINES:
        raise ConfigError(f"unknown generation engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "fast" and spec.do_sample:
        raise ConfigError("the fast engine is greedy only; use engine='nnsight' (or 'auto') for sampling")
    remote = remote_setting()
    if engine == "nnsight" or spec.do_sample or remote:
        return generate_patched_nnsight(loaded, prompts, spec, directions, remote=remote)
    return generate_fast(loaded, prompts, spec, directions, max_rows=max_rows)
