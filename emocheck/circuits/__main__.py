"""`python -m emocheck.circuits MODEL [--profile P] [--emotion E]`: phase 8 from the shell (each
emotion's circuit, its strongest edges and its head roles)."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from emocheck.circuits.analysis import circuit_edges, circuit_roles
from emocheck.circuits.experiment import run_circuit
from emocheck.study import study_for
from emocheck.profiles import get_profile


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocheck.circuits")
    p.add_argument("model")
    p.add_argument("--profile", default=None)
    p.add_argument("--emotion", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)       # one thread: on a shared small machine more threads only spin
    profile = get_profile(args.profile)
    for e in ([args.emotion] if args.emotion else study_for(profile).emotions):
        r = run_circuit(args.model, profile, e)
        null = np.array(r["null_faithfulness"])
        print(f"{args.model} {e}: circuit of {r['size']}/{r['n_components']} ({', '.join(r['circuit'])}); "
              f"held-out faithfulness {r['faithfulness']:.3f} (random mean {null.mean():.3f}, "
              f"95th pct {np.quantile(null, 0.95):.3f}); completeness {r['completeness']:.3f}; "
              f"attribution vs exact Spearman: " + ", ".join(
                  f"{m} {v['all'].get('spearman', float('nan')):.3f}" for m, v in r["validation"].items()))
        edges = circuit_edges(args.model, profile, e, progress=True)
        top = edges.reindex(edges.edge.abs().sort_values(ascending=False).index).head(5)
        print("  strongest edges (share of the source's ablation effect through the target): " + "; ".join(
            f"{a}->{b} {w:.1f} of {t:.1f}" for a, b, w, t in zip(top.src, top.dst, top.edge, top.total_src)))
        if "edge_attribution" in edges and len(edges) > 2:
            from scipy import stats as st
            print(f"  edge attribution vs exact edges: Spearman {st.spearmanr(edges.edge, edges.edge_attribution).statistic:.3f} "
                  f"over {len(edges)} edges")
        roles = circuit_roles(args.model, profile, e, progress=True)
        print("  head roles: " + "; ".join(f"{k} {v}" for k, v in roles.role.value_counts().items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
