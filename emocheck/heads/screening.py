"""Screening every attention head for emotion (phase 6, Q1): who writes it, who reads the trigger.

One forward pass per batch reads every head of every layer at the last prompt token
(`emocheck.heads.access.read_heads`), and per prompt and head computes

    write      the head's write into the residual stream projected on the unit emotion direction
               (vs_neutral, resid_post, last token) of the layer it writes into
    specific   the same on the emotion-specific direction ('specific': the shared emotional
               component projected out) of that layer
    trigger    its attention from the last position to the trigger tokens (sum over the trigger span)
    direct     its write projected on the FINAL layer's emotion direction: the direct effect on the
               direction the output reads (the residual stream is a sum, so later layers only add)

Directions come from TRAINING prompts (`build_representations`). A head's score for emotion e and
measure m is Cohen's d between e prompts and neutral prompts; it is computed on training prompts
(where heads are ranked and chosen) and on held-out prompts (where the choice is judged), each with a
percentile bootstrap CI (resampling prompts within each group). The ranking used downstream
(`top_heads`) is the TRAINING mean difference of `direct` in residual units: a head's first-order
contribution to the final projection, which is what ablating it removes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from emocheck.progress import tqdm

from emocheck.errors import ConfigError, DatasetError
from emocheck.heads.access import head_geometry, read_heads

MEASURES = ("write", "specific", "trigger", "direct")
RANK_MEASURE = "direct"
SCREEN_CODE_VERSION = "head-screen-v1"


def tokenize_with_spans(loaded, texts: list[str], triggers: list[str]):
    """Right-padded batch, last-token index [B] and trigger-span mask [B, T] (tokens overlapping the trigger)."""
    enc = loaded.tokenizer(list(texts), return_tensors="pt", padding=True, padding_side="right",
                           return_offsets_mapping=True, return_special_tokens_mask=True)
    mask = enc["attention_mask"]
    last = mask.sum(1) - 1
    span = torch.zeros_like(mask, dtype=torch.bool)
    for i, (text, trig) in enumerate(zip(texts, triggers)):
        start = text.find(trig) if trig else -1
        if start < 0:
            raise DatasetError(f"trigger {trig!r} is not in the prompt {text!r}")
        end = start + len(trig)
        off = enc["offset_mapping"][i]
        hit = (off[:, 0] < end) & (off[:, 1] > start) & (enc["special_tokens_mask"][i] == 0) & (mask[i] == 1)
        if not hit.any():
            raise DatasetError(f"no token of {loaded.name} covers the trigger {trig!r} in {text!r}")
        span[i] = hit
    return enc["input_ids"], mask, last, span


def unit_directions(reps, emotions: list[str], kind: str, layers: list[int]) -> torch.Tensor:
    """[n_layers, n_emotions, d] unit vectors at resid_post, last token."""
    out = []
    for layer in layers:
        row = []
        for e in emotions:
            v = reps.vectors.vector(e, layer, kind=kind, site="hook_resid_post", position="last").float()
            row.append(v / v.norm())
        out.append(torch.stack(row))
    return torch.stack(out)


def per_prompt_scores(loaded, reps, emotions: list[str], *, batch_size: int = 16, progress: bool = True) -> dict:
    """{measure: tensor [n_prompts, n_layers, n_heads(, n_emotions)]} for every prompt of `reps`, and
    'z_last' [n_prompts, n_layers, n_heads, head_dim] (every head's output at the last token)."""
    g = head_geometry(loaded)
    layers = list(range(g.n_layers))
    u_write = unit_directions(reps, emotions, "vs_neutral", layers)     # [L, E, d]
    u_spec = unit_directions(reps, emotions, "specific", layers)
    u_final = u_write[-1]                                               # [E, d]
    texts, triggers = reps.prompts["text"].tolist(), reps.prompts["trigger"].tolist()
    out = {m: [] for m in MEASURES}
    out["z_last"] = []     # [n, L, H, head_dim]: the source of mean / resample / patch-in values
    bar = tqdm(total=len(texts), desc=f"screen heads {loaded.name}", unit="prompt", disable=not progress, leave=False)
    for start in range(0, len(texts), batch_size):
        ids, mask, last, span = tokenize_with_spans(loaded, texts[start:start + batch_size],
                                                    triggers[start:start + batch_size])
        r = read_heads(loaded, ids, mask, last, pattern=True)
        w = torch.stack([r.write[layer] for layer in layers], 1)        # [B, L, H, d]
        out["write"].append(torch.einsum("blhd,led->blhe", w, u_write))
        out["specific"].append(torch.einsum("blhd,led->blhe", w, u_spec))
        out["direct"].append(torch.einsum("blhd,ed->blhe", w, u_final))
        pat = torch.stack([r.pattern[layer] for layer in layers], 1)    # [B, L, H, T]
        out["trigger"].append((pat * span[:, None, None, :].float()).sum(-1))
        out["z_last"].append(torch.stack([r.z[layer] for layer in layers], 1))
        bar.update(len(ids))
    bar.close()
    return {m: torch.cat(v) for m, v in out.items()}


def _d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cohen's d (pooled SD) along axis 0 for many heads at once; x [n1, ...], y [n2, ...]."""
    n1, n2 = len(x), len(y)
    v = ((n1 - 1) * x.var(0, ddof=1) + (n2 - 1) * y.var(0, ddof=1)) / (n1 + n2 - 2)
    return (x.mean(0) - y.mean(0)) / np.sqrt(np.maximum(v, 1e-300))


def _boot_d(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap CI of d for every column, via resampling-count matrices (one matmul
    per group, no [n_boot, n, heads] copy)."""
    rng = np.random.default_rng(seed)

    def moments(a):
        n = len(a)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)   # [B, n]
        s1 = counts @ a / n
        s2 = counts @ (a * a) / n
        return s1, np.maximum(s2 - s1 * s1, 0.0) * n / (n - 1)

    m1, v1 = moments(x)
    m2, v2 = moments(y)
    n1, n2 = len(x), len(y)
    pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2)
    d = (m1 - m2) / np.sqrt(np.maximum(pooled, 1e-300))
    return np.percentile(d, 2.5, axis=0), np.percentile(d, 97.5, axis=0)


@dataclass
class HeadScreen:
    model: str
    emotions: list[str]
    n_layers: int
    n_heads: int
    table: pd.DataFrame        # one row per (emotion, measure, layer, head)

    def ranked(self, emotion: str, measure: str = RANK_MEASURE) -> pd.DataFrame:
        t = self.table[(self.table.emotion == emotion) & (self.table.measure == measure)]
        return t.sort_values("train_diff", ascending=False, kind="stable").reset_index(drop=True)

    def top_heads(self, emotion: str, n: int, measure: str = RANK_MEASURE) -> list[tuple[int, int]]:
        """The n heads with the largest TRAINING mean difference (emotion - neutral) on `measure`."""
        if emotion not in self.emotions:
            raise ConfigError(f"unknown emotion {emotion!r}; screened: {', '.join(self.emotions)}")
        r = self.ranked(emotion, measure)
        if n > len(r):
            raise ConfigError(f"asked for the top {n} heads but the model has {len(r)}")
        return [(int(a), int(b)) for a, b in zip(r["layer"][:n], r["head"][:n])]


def score_heads(scores: dict, prompts: pd.DataFrame, emotions: list[str], model: str, *,
                n_boot: int = 1000, seed: int = 0, neutral: str = "neutral") -> HeadScreen:
    """Turn per-prompt scores into the per-head table (train and held-out d with bootstrap CIs)."""
    labels = prompts["emotion"].to_numpy()
    split = prompts["split"].to_numpy()
    n_layers, n_heads = scores["trigger"].shape[1:3]
    frames = []
    for ei, e in enumerate(emotions):
        for mi, measure in enumerate(MEASURES):
            s = scores[measure]
            s = (s[..., ei] if s.dim() == 4 else s).double().numpy().reshape(len(labels), -1)
            row = {"emotion": e, "measure": measure}
            cols = {}
            for part in ("train", "held_out"):
                x = s[(labels == e) & (split == part)]
                y = s[(labels == neutral) & (split == part)]
                if len(x) < 3 or len(y) < 3:
                    raise ConfigError(f"screening needs at least 3 {e} and 3 neutral {part} prompts")
                cols[f"{part}_d"] = _d(x, y)
                cols[f"{part}_diff"] = x.mean(0) - y.mean(0)
                lo, hi = _boot_d(x, y, n_boot, seed + 1000 * ei + 10 * mi + (part == "held_out"))
                cols[f"{part}_d_low"], cols[f"{part}_d_high"] = lo, hi
            layer, head = np.divmod(np.arange(n_layers * n_heads), n_heads)
            frames.append(pd.DataFrame({**row, "layer": layer, "head": head, **cols}))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    return HeadScreen(model, list(emotions), int(n_layers), int(n_heads), table)


def plot_heatmaps(screen: HeadScreen, emotion: str, path) -> None:
    """Layer x head heat maps of held-out d for every measure (one PNG per emotion)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emocheck.storage import atomic_save_figure

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(3.2 * len(MEASURES), 0.25 * screen.n_layers + 2))
    for ax, measure in zip(axes, MEASURES):
        t = screen.table[(screen.table.emotion == emotion) & (screen.table.measure == measure)]
        grid = t.sort_values(["layer", "head"])["held_out_d"].to_numpy().reshape(screen.n_layers, screen.n_heads)
        lim = float(np.nanmax(np.abs(grid))) or 1.0
        im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
        ax.set_title(f"{measure} (held-out d)", fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{screen.model}: {emotion} vs neutral, per head")
    fig.tight_layout()
    atomic_save_figure(fig, path)
