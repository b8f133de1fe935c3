"""Components (every attention head and every MLP) and exact last-token runs over them.

A component is a query head (its `blocks.L.attn.hook_z` slice, the input of the output projection)
or an MLP (`blocks.L.hook_mlp_out`, what it adds to the residual stream). Everything in this package
intervenes at the LAST prompt token only, where the emotion is read: attention is causal, so such an
intervention cannot change any earlier position, and the keys/values of positions 0..T-2 are the same
in every run. `LastTokenRun` therefore runs the prefix once per prompt (use_cache=True) and then only
the last token, as many rows as there are interventions, each row over a copy of that cache
(the same idea as emocheck.heads.prefix_cache, extended to MLPs, to additive deltas and to
gradients). A row's intervention is:

    replace   component c's activation := value (mean ablation: the mean over other prompts)
    delta     component c's activation += delta (zero deltas with requires_grad give the gradient of
              the metric with respect to every component at once: attribution patching)

Replacing a component does not freeze the others: later components are recomputed from the patched
residual (that is what exact patching means here). Metrics read at the last token:

    projection    final layer's resid_post projected on a unit direction (the emotion direction)
    logprob       log of the total next-token probability of a set of token ids (emotion words)
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch

from emocheck.errors import ConfigError
from emocheck.heads.access import head_geometry, out_proj
from emocheck.models.architectures import resolve


@dataclass(frozen=True)
class Component:
    kind: str           # "head" | "mlp"
    layer: int
    head: int = -1      # -1 for an MLP

    @property
    def hook_name(self) -> str:
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z.{self.head}"
        return f"blocks.{self.layer}.hook_mlp_out"

    @property
    def label(self) -> str:
        return f"L{self.layer}H{self.head}" if self.kind == "head" else f"L{self.layer}MLP"


def all_components(loaded) -> list[Component]:
    """Every head, then every MLP, in layer order within each kind (the index used by all masks)."""
    g = head_geometry(loaded)
    heads = [Component("head", layer, h) for layer in range(g.n_layers) for h in range(g.n_heads)]
    return heads + [Component("mlp", layer) for layer in range(g.n_layers)]


def split_mask(mask: torch.Tensor, n_layers: int, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[R, n_components] -> (heads [R, L, H], mlps [R, L]) in the all_components order."""
    n_h = n_layers * n_heads
    if mask.shape[-1] != n_h + n_layers:
        raise ConfigError(f"component mask has {mask.shape[-1]} columns; this model has {n_h + n_layers} components")
    return mask[..., :n_h].reshape(*mask.shape[:-1], n_layers, n_heads), mask[..., n_h:]


def mlp_module(loaded, layer: int) -> torch.nn.Module:
    return resolve(loaded.layer_module(layer), loaded.arch.mlp_out)


def mlp_block(loaded, layer: int) -> torch.nn.Module:
    """The module that computes layer's MLP (ArchitectureMap.mlp_block): rows that replace its write skip it."""
    return resolve(loaded.layer_module(layer), loaded.arch.mlp_block)


def _rows_only(module: torch.nn.Module, compute: torch.Tensor):
    """A forward for `module` that computes only the rows where `compute` [R] is True and gives zeros
    elsewhere. Used where those rows' output is replaced afterwards (mean ablation), so their values
    never reach anything: mean-ablating most MLPs, as keep-only circuit rows do, then costs only the
    MLPs that are kept (the MLP is about 3/4 of a block's weights on the embedded models)."""
    forward = module.forward

    def rows_only(x, *args, **kwargs):
        if compute.all() or x.shape[0] != compute.shape[0]:
            return forward(x, *args, **kwargs)
        out = torch.zeros_like(x)
        if compute.any():
            part = forward(x[compute], *args, **kwargs)
            if not isinstance(part, torch.Tensor) or part.shape[1:] != x.shape[1:]:
                return forward(x, *args, **kwargs)      # not a tensor -> same-shape tensor MLP: run it whole
            out[compute] = part
        return out
    return rows_only


@dataclass
class Activations:
    """Last-token activations of every component: z [R, L, H, hd], mlp [R, L, d] (float32)."""

    z: torch.Tensor
    mlp: torch.Tensor

    def mean(self) -> "Activations":
        return Activations(self.z.mean(0, keepdim=True), self.mlp.mean(0, keepdim=True))


def token_ids_for_words(loaded, words) -> list[int]:
    """First token of ' word' for each word (the next-token view of an emotion word), de-duplicated."""
    ids = []
    for w in words:
        enc = loaded.tokenizer(" " + w.strip(), add_special_tokens=False)["input_ids"]
        if enc and enc[0] not in ids:
            ids.append(int(enc[0]))
    if not ids:
        raise ConfigError(f"none of the words {list(words)} gives a token")
    return ids


def _split_prefix(cache, lengths):
    """Per-row caches of a right-padded batched prefix pass (row k keeps its first lengths[k]
    positions), or None where a layer is of a kind this cannot slice safely."""
    width = max(lengths)
    for layer in cache.layers:
        kind = type(layer).__name__
        if kind not in ("DynamicLayer", "DynamicSlidingWindowLayer"):
            return None
        if getattr(layer, "is_sliding", False) and width >= layer.sliding_window - 1:
            return None
        if not getattr(layer, "is_initialized", False) or layer.keys is None or layer.keys.shape[-2] != width:
            return None
    out = []
    for k, n in enumerate(lengths):
        new = copy.copy(cache)
        new.layers = []
        for layer in cache.layers:
            dup = copy.copy(layer)
            dup.keys = layer.keys[k:k + 1, :, :n].clone()
            dup.values = layer.values[k:k + 1, :, :n].clone()
            if hasattr(layer, "cumulative_length"):
                dup.cumulative_length = n
            new.layers.append(dup)
        out.append(new)
    return out


class LastTokenRun:
    """The prefix of one prompt, cached, and any number of last-token runs over it."""

    def __init__(self, loaded, text: str, *, prefix=None):
        self.loaded = loaded
        self.g = head_geometry(loaded)
        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"].to(loaded.device)
        if ids.shape[1] < 2:
            raise ConfigError(f"prompt {text!r} has fewer than 2 tokens; a last-token run needs a prefix")
        self.ids = ids
        self.body = loaded.model.base_model
        # transformers >= 5 names the KV cache argument `cache` (`past_key_values` is deprecated)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(self.body.forward).parameters else "past_key_values"
        if prefix is not None:                  # from `many`: this prompt's rows of a batched prefix pass
            self.prefix = prefix
            return
        with torch.no_grad():
            out = self.body(input_ids=ids[:, :-1], use_cache=True)
            self.prefix = out["cache"] if "cache" in out else out["past_key_values"]

    @classmethod
    def many(cls, loaded, texts, batch_size: int = 32) -> list["LastTokenRun"]:
        """One LastTokenRun per text, their prefixes run in right-padded batches instead of one
        weight-bound pass per prompt (the circuits run a prefix for every attribution and held-out
        prompt). Attention is causal, so the pad after a prefix changes none of its positions, and
        prompt i's cache is the first len_i - 1 positions of its row: what a pass of that prompt alone
        gives, up to float summation order (tests/test_circuits_components.py). A batch falls back to
        one pass per prompt where a cache layer is not a plain or sliding-window layer, or where the
        padded prefix would reach a sliding window (the layer would have dropped real positions)."""
        texts = list(texts)
        runs = [cls.__new__(cls) for _ in texts]
        encoded = [loaded.tokenizer(t, return_tensors="pt")["input_ids"][0] for t in texts]
        for start in range(0, len(texts), batch_size):
            part = list(range(start, min(len(texts), start + batch_size)))
            lengths = [len(encoded[i]) - 1 for i in part]
            width = max(lengths)
            caches = None
            if width >= 1 and min(lengths) >= 1 and len(part) > 1:
                # pad with each prompt's own last prefix token (any real id does; a pad id could trigger mask logic)
                ids = torch.stack([torch.cat([encoded[i][:-1], encoded[i][-2:-1].expand(width - n)])
                                   for i, n in zip(part, lengths)]).to(loaded.device)
                with torch.no_grad():
                    out = loaded.model.base_model(input_ids=ids, use_cache=True)
                batched = out["cache"] if "cache" in out else out["past_key_values"]
                caches = _split_prefix(batched, lengths)
            for k, i in enumerate(part):
                if caches is None:
                    runs[i] = cls(loaded, texts[i])
                else:
                    runs[i].__init__(loaded, texts[i], prefix=caches[k])
        return runs

    def run(self, rows: int = 1, *, head_mask=None, head_vals=None, mlp_mask=None, mlp_vals=None,
            head_delta=None, mlp_delta=None, direction=None, token_ids=None, grad: bool = False) -> dict:
        """One batched last-token pass of `rows` rows.

        head_mask [R, L, H] bool + head_vals [L, H, hd] or [R, L, H, hd]: replace those heads' z;
        mlp_mask [R, L] bool + mlp_vals [L, d] or [R, L, d]: replace those MLP outputs;
        head_delta [R, L, H, hd], mlp_delta [R, L, d]: added after the replacement.
        Returns {'acts': Activations (after the interventions), 'projection': [R] if direction,
        'logprob': [R] if token_ids, 'resid': [R, d] final resid_post}.
        """
        g, loaded = self.g, self.loaded
        dtype, device = loaded.dtype, loaded.device
        z_seen, mlp_seen, read = {}, {}, {}

        def head_hook(layer):
            def hook(mod, args):
                x = args[0]
                zh = x.view(x.shape[0], 1, g.n_heads, g.head_dim)[:, 0]
                if head_mask is not None and head_mask[:, layer].any():
                    vals = head_vals[layer] if head_vals.dim() == 3 else head_vals[:, layer]
                    vals = vals.to(device=device, dtype=dtype)
                    if vals.dim() == 2:
                        vals = vals.expand(zh.shape[0], -1, -1)
                    zh = torch.where(head_mask[:, layer, :, None].to(device), vals, zh)
                if head_delta is not None:
                    zh = zh + head_delta[:, layer].to(dtype)
                z_seen[layer] = zh
                return (zh.reshape(x.shape[0], 1, -1), *args[1:])
            return hook

        def mlp_hook(layer):
            def hook(mod, args, output):
                h = output[0] if isinstance(output, tuple) else output
                m = h[:, 0]
                if mlp_mask is not None and mlp_mask[:, layer].any():
                    vals = mlp_vals[layer] if mlp_vals.dim() == 2 else mlp_vals[:, layer]
                    vals = vals.to(device=device, dtype=dtype)
                    if vals.dim() == 1:
                        vals = vals.expand(m.shape[0], -1)
                    m = torch.where(mlp_mask[:, layer, None].to(device), vals, m)
                if mlp_delta is not None:
                    m = m + mlp_delta[:, layer].to(dtype)
                mlp_seen[layer] = m
                new = m[:, None]
                return (new, *output[1:]) if isinstance(output, tuple) else new
            return hook

        def final_hook(mod, args, output):
            h = output[0] if isinstance(output, tuple) else output
            read["resid"] = h[:, -1]

        handles, skipped = [], []
        try:
            for layer in range(g.n_layers):
                handles.append(out_proj(loaded, layer).register_forward_pre_hook(head_hook(layer)))
                handles.append(mlp_module(loaded, layer).register_forward_hook(mlp_hook(layer)))
                if mlp_mask is not None and not grad and mlp_mask[:, layer].any():
                    block = mlp_block(loaded, layer)
                    # an instance attribute over the class's forward; one already there (accelerate's
                    # device hooks put theirs there) is wrapped, and put back afterwards
                    skipped.append((block, block.__dict__.get("forward")))
                    block.forward = _rows_only(block, ~mlp_mask[:, layer].to(device))
            handles.append(loaded.layer_module(g.n_layers - 1).register_forward_hook(final_hook))
            cache = copy.deepcopy(self.prefix)
            if rows > 1:
                cache.batch_repeat_interleave(rows)
            with torch.set_grad_enabled(grad):
                out = self.body(input_ids=self.ids[:, -1:].expand(rows, -1), use_cache=True,
                                **{self.cache_kwarg: cache})
                result = {"resid": read["resid"].float()}
                if direction is not None:
                    u = direction.float().to(device)
                    result["projection"] = result["resid"] @ (u / u.norm())
                if token_ids is not None:
                    logits = loaded.model.get_output_embeddings()(out.last_hidden_state[:, -1]).float()
                    cap = getattr(loaded.config, "final_logit_softcapping", None)
                    if cap:
                        logits = torch.tanh(logits / cap) * cap
                    logp = torch.log_softmax(logits, -1)
                    result["logprob"] = torch.logsumexp(logp[:, list(token_ids)], -1)
        finally:
            for h in handles:
                h.remove()
            for block, previous in reversed(skipped):
                if previous is None:
                    del block.forward                            # back to the class's forward
                else:
                    block.forward = previous
        z = torch.stack([z_seen[layer] for layer in range(g.n_layers)], 1)
        mlp = torch.stack([mlp_seen[layer] for layer in range(g.n_layers)], 1)
        result["acts"] = Activations(z if grad else z.detach().float(), mlp if grad else mlp.detach().float())
        return result


def last_token_activations(loaded, texts, batch_size: int = 32) -> Activations:
    """Unpatched last-token activations of every component, one row per text ([n, L, H, hd], [n, L, d]).

    The texts run in right-padded batches without an attention mask: attention is causal, so a pad
    AFTER a prompt's last token cannot change any of its positions, and reading each prompt at its own
    last position gives what a run of that prompt alone gives (up to float summation order), at the
    cost of one batched forward instead of one weight-bound forward per prompt."""
    g = head_geometry(loaded)
    encoded = [loaded.tokenizer(t, return_tensors="pt")["input_ids"][0] for t in texts]
    if not encoded:
        raise ConfigError("mean_activations needs at least one prompt")
    zs, ms = [], []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        width = max(len(e) for e in chunk)
        # pad with each prompt's own last token (any real id does; a pad id could trigger mask logic)
        ids = torch.stack([torch.cat([e, e[-1:].expand(width - len(e))]) for e in chunk]).to(loaded.device)
        last = torch.tensor([len(e) - 1 for e in chunk], device=loaded.device)
        rows = torch.arange(len(chunk), device=loaded.device)
        z_at, mlp_at = {}, {}

        def head_hook(layer):
            def hook(mod, args):
                z_at[layer] = args[0][rows, last].reshape(len(chunk), g.n_heads, g.head_dim).float()
            return hook

        def mlp_hook(layer):
            def hook(mod, args, output):
                h = output[0] if isinstance(output, tuple) else output
                mlp_at[layer] = h[rows, last].float()
            return hook

        handles = []
        try:
            for layer in range(g.n_layers):
                handles.append(out_proj(loaded, layer).register_forward_pre_hook(head_hook(layer)))
                handles.append(mlp_module(loaded, layer).register_forward_hook(mlp_hook(layer)))
            with torch.no_grad():
                loaded.model.base_model(input_ids=ids, use_cache=False)
        finally:
            for h in handles:
                h.remove()
        zs.append(torch.stack([z_at[layer] for layer in range(g.n_layers)], 1))
        ms.append(torch.stack([mlp_at[layer] for layer in range(g.n_layers)], 1))
    return Activations(torch.cat(zs), torch.cat(ms))


def mean_activations(loaded, texts) -> Activations:
    """Mean last-token activation of every component over `texts` (e.g. training neutral prompts)."""
    acts = last_token_activations(loaded, list(texts))
    return Activations(acts.z.mean(0), acts.mlp.mean(0))
