"""Propagation (the seed's second step): does patching v_e at layer L move the residual stream's
projection on the emotion direction at LATER layers more than a random direction of the same norm?

Representation-level, one forward pass per row, no generation: the delta alpha * direction is added
at layer L's site on the last prompt position (the position generation step 0 patches), and the
last-position resid_post of every layer l >= L is read and projected on unit(v_e at layer l). The
shift is patched - unpatched projection, per prompt. Controls are drawn fresh per prompt, like the
generation nulls (random Gaussian and label-permuted directions, norm ||v_e||).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.errors import ConfigError
from emocheck.patching.residual import tokenize_prompts
from emocheck.patching.running import delta_dtype
from emocheck.storage import atomic_save_figure


def last_position_projections(loaded, texts: list[str], layer: int, site: str, deltas: torch.Tensor,
                              read_units: dict[int, torch.Tensor], batch_size: int = 32) -> np.ndarray:
    """[B, len(read_units)] projections of the last-position resid_post at each read layer (sorted),
    after adding deltas[b] at `layer`'s site (last position) of row b."""
    if deltas.shape[0] != len(texts):
        raise ConfigError(f"{deltas.shape[0]} deltas for {len(texts)} prompts: give one delta per prompt")
    if site not in ("hook_resid_pre", "hook_resid_post"):
        raise ConfigError(f"unknown site {site!r}")
    read = sorted(read_units)
    units = torch.stack([read_units[l].double() / read_units[l].double().norm() for l in read])   # [R, d]
    out = np.empty((len(texts), len(read)))
    dtype = delta_dtype(loaded.dtype)
    for s in range(0, len(texts), batch_size):
        e = min(len(texts), s + batch_size)
        ids, mask = tokenize_prompts(loaded, texts[s:e])
        delta = deltas[s:e].to(device=loaded.device, dtype=dtype)
        captured = {}

        def patch(h):
            h[:, -1] += delta        # left padding: -1 is every row's last real token

        def make_post(l):
            def hook(mod, args, output):
                h = output[0] if isinstance(output, tuple) else output
                if l == layer and site == "hook_resid_post":
                    patch(h)
                if l in read_units:
                    captured[l] = h[:, -1].detach().double().cpu()
            return hook

        def pre_hook(mod, args, kwargs):
            patch(args[0] if args else kwargs["hidden_states"])

        handles = []
        try:
            if site == "hook_resid_pre":
                handles.append(loaded.layer_module(layer).register_forward_pre_hook(pre_hook, with_kwargs=True))
            for l in sorted(set(read) | {layer}):
                handles.append(loaded.layer_module(l).register_forward_hook(make_post(l)))
            with torch.no_grad():
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                # one logit row: Gemma's 262k-token head on every position would dominate the pass
                loaded.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1)
        finally:
            for h in handles:
                h.remove()
        out[s:e] = torch.stack([captured[l] for l in read], 1).mul(units[None]).sum(-1).numpy()
    return out


def propagation_table(loaded, prompts: pd.DataFrame, conditions, layer: int, site: str, read_units_by_emotion) -> pd.DataFrame:
    """Long table: sample_id, condition, kind, emotion, read_layer, projection, shift (vs unpatched).

    `conditions`: Conditions from conditions.claim_conditions (baseline, emotion, random, permuted are
    used); `read_units_by_emotion`: {emotion: {read layer: v_e at that layer}}.
    """
    use = [c for c in conditions if c.kind in ("baseline", "emotion", "random", "permuted")]
    index = {pid: i for i, pid in enumerate(prompts["id"])}
    rows = [(c, pid) for c in use for pid in (prompts["id"] if c.prompt_ids is None else c.prompt_ids)]
    frames = []
    for emotion, units in read_units_by_emotion.items():
        mine = [(c, pid) for c, pid in rows if c.emotion in (emotion, None)]
        texts = [prompts["text"].iloc[index[pid]] for _, pid in mine]
        deltas = torch.stack([c.vector for c, _ in mine])
        proj = last_position_projections(loaded, texts, layer, site, deltas, units)
        read = sorted(units)
        for j, l in enumerate(read):
            frames.append(pd.DataFrame({"sample_id": [pid for _, pid in mine], "condition": [c.name for c, _ in mine],
                                        "kind": [c.kind for c, _ in mine], "emotion": emotion, "read_layer": l,
                                        "projection": proj[:, j]}))
    df = pd.concat(frames, ignore_index=True)
    base = df[df["kind"] == "baseline"].set_index(["emotion", "read_layer", "sample_id"])["projection"]
    df["shift"] = df["projection"].to_numpy() - base.reindex(
        pd.MultiIndex.from_frame(df[["emotion", "read_layer", "sample_id"]])).to_numpy()
    return df


def plot_propagation(df: pd.DataFrame, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = sorted(df["emotion"].unique())
    fig, axes = plt.subplots(1, len(emotions), figsize=(4 * len(emotions), 3.2), squeeze=False)
    for ax, e in zip(axes[0], emotions):
        sub = df[(df["emotion"] == e) & (df["kind"] != "baseline")]
        for kind, g in sub.groupby("kind"):
            m = g.groupby("read_layer")["shift"].agg(["mean", "std", "count"])
            se = m["std"] / np.sqrt(m["count"])
            ax.errorbar(m.index, m["mean"], yerr=se, marker="o", ms=3, label=kind)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("read layer")
        ax.set_title(f"{e}: projection shift on v_e (mean +- SE)", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
