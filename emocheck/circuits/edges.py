"""Edges among circuit nodes: how much of node u's effect on the metric passes through node v.

For u in an earlier layer than v, on a target prompt, with u mean-ablated (its source value):

    edge(u -> v) = [m(u ablated) - m(clean)] - [m(u ablated, v frozen at its clean value) - m(clean)]

the part of u's (exact) ablation effect that is mediated by v's activation at the last token. It is
exact path patching through one node, not a first-order estimate: every pair is one row of a batched
last-token pass over the cached prefix. (A head in the same layer as u, or earlier, cannot be
affected at the last token, so only later layers are paired.) Positive = v carries u's effect in the
same direction as u's total effect when u's effect is positive; the sign is kept as measured.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from emocheck.circuits.components import Activations, LastTokenRun, split_mask


def node_pairs(nodes, components) -> list[tuple[int, int]]:
    return [(u, v) for u in nodes for v in nodes if components[u].layer < components[v].layer]


def edge_effects(loaded, texts, source: Activations, nodes, components, *, direction, rows_per_pass: int = 128) -> pd.DataFrame:
    """Mean edge effects over `texts` for every ordered pair of `nodes` (component indices) with
    u's layer < v's layer. Columns: src, dst, edge (mean), total_src (u's exact ablation effect)."""
    pairs = node_pairs(nodes, components)
    if not pairs:
        return pd.DataFrame(columns=["src", "dst", "edge", "total_src"])
    n_comp = len(components)
    per_prompt_edge, per_prompt_total = [], []
    for text in texts:
        run = LastTokenRun(loaded, text)
        g = run.g
        clean = run.run(direction=direction)
        base = float(clean["projection"][0])
        target = clean["acts"]
        srcs = sorted({u for u, _ in pairs})
        rows = [[u] for u in srcs] + [[u, v] for u, v in pairs]
        vals = []
        for start in range(0, len(rows), rows_per_pass):
            chunk = rows[start:start + rows_per_pass]
            r = len(chunk)
            mask = torch.zeros(r, n_comp, dtype=torch.bool)
            hz = target.z.expand(r, -1, -1, -1).clone()
            hm = target.mlp.expand(r, -1, -1).clone()
            for i, members in enumerate(chunk):
                mask[i, members] = True
                u = members[0]                          # u takes its source value, v keeps its clean one
                c = components[u]
                if c.kind == "head":
                    hz[i, c.layer, c.head] = source.z.reshape(g.n_layers, g.n_heads, g.head_dim)[c.layer, c.head]
                else:
                    hm[i, c.layer] = source.mlp.reshape(g.n_layers, g.d_model)[c.layer]
            head_mask, mlp_mask = split_mask(mask, g.n_layers, g.n_heads)
            out = run.run(r, head_mask=head_mask, head_vals=hz, mlp_mask=mlp_mask, mlp_vals=hm, direction=direction)
            vals.append(out["projection"].double().cpu().numpy() - base)
        vals = np.concatenate(vals)
        total = dict(zip(srcs, vals[: len(srcs)]))
        frozen = vals[len(srcs):]
        per_prompt_total.append([total[u] for u, _ in pairs])
        per_prompt_edge.append([total[u] - f for (u, _), f in zip(pairs, frozen)])
    edge = np.mean(per_prompt_edge, 0)
    tot = np.mean(per_prompt_total, 0)
    return pd.DataFrame({"src": [components[u].label for u, _ in pairs], "dst": [components[v].label for _, v in pairs],
                         "edge": edge, "total_src": tot})


def edge_attribution(loaded, texts, source: Activations, nodes, components, *, direction) -> pd.DataFrame:
    """First-order edge attribution (EAP-style; Syed et al. arXiv 2310.10348) for every ordered pair of
    `nodes` with u's layer < v's layer, the linear estimate of `edge_effects`' exact edge:

        eap(u -> v) = (source_u - target_u) . d(g_v . a_v) / d a_u,   g_v = d metric / d a_v (clean run)

    i.e. u's change, pushed to v through the Jacobian of v's activation (every path from u to v), times
    v's gradient on the metric. Per prompt: one last-token forward with zero deltas as leaves, one
    backward for the gradients and one per target node (a handful, not one per pair). Columns: src,
    dst, edge_attribution (mean over `texts`), total_attribution (u's node attribution)."""
    pairs = node_pairs(nodes, components)
    if not pairs:
        return pd.DataFrame(columns=["src", "dst", "edge_attribution", "total_attribution"])
    targets = sorted({v for _, v in pairs})
    per_prompt, per_total = [], []
    for text in texts:
        run = LastTokenRun(loaded, text)
        g = run.g
        clean = run.run(direction=direction)["acts"]
        dz = source.z.reshape(1, g.n_layers, g.n_heads, g.head_dim) - clean.z
        dm = source.mlp.reshape(1, g.n_layers, g.d_model) - clean.mlp
        delta_z = torch.zeros_like(dz).requires_grad_(True)
        delta_m = torch.zeros_like(dm).requires_grad_(True)
        out = run.run(head_delta=delta_z, mlp_delta=delta_m, direction=direction, grad=True)
        gz, gm = torch.autograd.grad(out["projection"].sum(), (delta_z, delta_m), retain_graph=True)

        def act(i, acts=out["acts"]):
            c = components[i]
            return acts.z[0, c.layer, c.head] if c.kind == "head" else acts.mlp[0, c.layer]

        def grad_of(i, tz, tm):
            c = components[i]
            return tz[0, c.layer, c.head] if c.kind == "head" else tm[0, c.layer]

        def delta_of(i):
            c = components[i]
            return dz[0, c.layer, c.head] if c.kind == "head" else dm[0, c.layer]

        through = {}
        for v in targets:
            s_v = (act(v) * grad_of(v, gz, gm).detach()).sum()
            through[v] = torch.autograd.grad(s_v, (delta_z, delta_m), retain_graph=True, allow_unused=True)
        per_prompt.append([float((delta_of(u) * grad_of(u, *through[v])).sum()) for u, v in pairs])
        per_total.append([float((delta_of(u) * grad_of(u, gz, gm)).sum()) for u, _ in pairs])
    return pd.DataFrame({"src": [components[u].label for u, _ in pairs], "dst": [components[v].label for _, v in pairs],
                         "edge_attribution": np.mean(per_prompt, 0), "total_attribution": np.mean(per_total, 0)})
