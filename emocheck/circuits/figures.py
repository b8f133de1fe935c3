"""Figures: the circuit as a graph (layers left to right) and the faithfulness curve."""
from __future__ import annotations

import numpy as np

from emocheck.storage import atomic_save_figure


def plot_faithfulness(result: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    # sizes past the first block reaching the share are evaluated on a coarser grid (None elsewhere)
    curve = np.array([np.nan if v is None else v for v in result["train_curve"]], dtype=float)
    sizes = np.arange(1, len(curve) + 1)
    ok = np.isfinite(curve)
    ax.plot(sizes[ok], curve[ok], label="training prompts (attribution order)")
    ax.axhline(result["share"], ls="--", c="grey", lw=1)
    ax.axvline(result["size"], ls=":", c="k", lw=1)
    null = np.asarray(result["null_faithfulness"])
    ax.scatter([result["size"]] * len(null), null, s=6, c="tab:orange", alpha=0.4, label="random circuits (held-out)")
    ax.scatter([result["size"]], [result["faithfulness"]], c="tab:red", zorder=3, label="circuit (held-out)")
    ax.set_xscale("log")
    ax.set_xlabel("circuit size (components kept, rest mean-ablated)")
    ax.set_ylabel("faithfulness")
    ax.set_title(f"{result['model']} {result['emotion']}", fontsize=9)
    ax.legend(fontsize=7)
    atomic_save_figure(fig, path)


def plot_circuit(result: dict, components, n_layers: int, n_heads: int, path, edges=None) -> None:
    """Nodes at (layer, head; the MLP above the heads), area by |attribution|, colour by sign; edges
    (optional [(src_label, dst_label, weight)]) drawn with width by |weight|."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = {}
    for c in components:
        pos[c.label] = (c.layer, n_heads + 0.5 if c.kind == "mlp" else c.head)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * n_layers + 2), 3.5))
    xs, ys = zip(*pos.values())
    ax.scatter(xs, ys, s=4, c="lightgrey")
    attr = result["attribution"]
    scale = max(abs(v) for v in attr.values()) or 1.0
    top = max((abs(e[2]) for e in edges or []), default=1.0) or 1.0
    for src, dst, w in edges or []:
        # arcs, so that edges between nodes of one row (MLP -> MLP) stay visible
        ax.annotate("", xy=pos[dst], xytext=pos[src], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", connectionstyle="arc3,rad=0.25", lw=0.5 + 3 * abs(w) / top,
                                    color="tab:purple" if w * 1.0 < 0 else "tab:green", alpha=0.7))
    for label, v in attr.items():
        x, y = pos[label]
        ax.scatter([x], [y], s=30 + 300 * abs(v) / scale, c="tab:red" if -v > 0 else "tab:blue", zorder=3)
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("layer")
    ax.set_yticks(list(range(n_heads)) + [n_heads + 0.5], [f"H{h}" for h in range(n_heads)] + ["MLP"], fontsize=6)
    ax.set_title(f"{result['model']} {result['emotion']} circuit: {result['size']} components, held-out "
                 f"faithfulness {result['faithfulness']:.2f}\nnode area: |attribution| (red: ablating lowers the "
                 f"projection); arcs u->v: exact effect of u carried by v (width by |edge|)", fontsize=7)
    atomic_save_figure(fig, path)


def plot_head_tokens(df, path, title: str) -> None:
    """Per circuit head: OV projection on the emotion direction at trigger tokens vs elsewhere (left),
    attention to the trigger relative to uniform from the last token vs later positions (right)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = {"picks up at the trigger": "tab:red", "writes to the output": "tab:blue"}
    c = [colours.get(r, "tab:grey") for r in df.role]
    axes[0].scatter(df.other_ov, df.trigger_ov, c=c, s=18)
    lim = [float(np.nanmin([df.other_ov.min(), df.trigger_ov.min()])), float(np.nanmax([df.other_ov.max(), df.trigger_ov.max()]))]
    axes[0].plot(lim, lim, c="grey", lw=0.5)
    axes[0].set_xlabel("OV . u at other tokens (mean)")
    axes[0].set_ylabel("OV . u at trigger tokens (mean)")
    axes[1].scatter(df.trigger_ratio_after, df.trigger_ratio, c=c, s=18)
    axes[1].axhline(2.0, ls="--", c="grey", lw=0.5)
    axes[1].set_xlabel("attention to trigger / uniform, positions after it")
    axes[1].set_ylabel("attention to trigger / uniform, last token")
    for ax in axes:
        for r in df.itertuples():
            x, y = (r.other_ov, r.trigger_ov) if ax is axes[0] else (r.trigger_ratio_after, r.trigger_ratio)
            ax.annotate(r.component, (x, y), fontsize=5, xytext=(2, 2), textcoords="offset points")
    handles = [plt.Line2D([], [], marker="o", ls="", c=v, label=k) for k, v in colours.items()]
    handles.append(plt.Line2D([], [], marker="o", ls="", c="tab:grey", label="relays"))
    axes[1].legend(handles=handles, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, path)
