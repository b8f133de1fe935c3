"""Edges and head roles of a discovered circuit (after `emocheck.circuits.experiment.run_circuit`):
exact path-patching edges with the first-order edge attribution beside them, and per-head roles with
their token-level OV / QK evidence. Both tables are cached by the storage rule, keyed by the circuit."""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck.circuits.components import all_components
from emocheck.circuits.experiment import circuit_seed, design_texts, neutral_means, out_dir, run_circuit, settings
from emocheck.profiles import Profile
from emocheck.storage import file_lock, read_table_artifact, write_table_artifact
from emocheck.study import study_for
from emocheck import timing

EDGE_NODES = 12
EDGE_PROMPTS = 3
EDGES_VERSION = 2          # 2: first-order edge attribution beside the exact edges


def _inputs(model_name: str, profile: Profile, emotion: str, progress: bool):
    """What edges and roles both start from, drawn as the discovery drew them (same seed, same order):
    (representations, loaded model, components, training emotion prompts, training neutral prompts,
    final-layer emotion direction, mean neutral activations)."""
    from emocheck.models.registry import load_model
    from emocheck.representations.build import build_representations

    reps = build_representations(model_name, profile, progress=progress)
    texts = design_texts(reps.prompts, emotion, settings(profile), circuit_seed(profile, study_for(profile), emotion))
    attr_texts, neutral_texts = texts["attr"], texts["neutral"]
    loaded = load_model(model_name)
    direction = reps.vectors.vector(emotion, loaded.n_layers - 1, kind="vs_neutral", site="hook_resid_post",
                                    position="last").float()
    return (reps, loaded, all_components(loaded), attr_texts, neutral_texts, direction,
            neutral_means(loaded, neutral_texts))


@timing.timed("circuits")
def circuit_edges(model_name: str, profile: Profile, emotion: str, progress: bool = True) -> pd.DataFrame:
    """Edges among the circuit's EDGE_NODES members of largest |attribution| (emocheck.circuits.edges:
    exact path patching through one node, and beside it the first-order edge attribution, timed) on
    the first EDGE_PROMPTS attribution prompts; writes edges_<emotion>.csv (both, with their Spearman
    correlation in the sidecar) and redraws circuit_<emotion>.png with the exact edges."""
    import time

    from scipy import stats as st

    from emocheck.circuits.edges import edge_attribution, edge_effects
    from emocheck.circuits.figures import plot_circuit

    result = run_circuit(model_name, profile, emotion, progress=progress)
    out = out_dir(profile, model_name)
    path = out / f"edges_{emotion}.csv"
    with file_lock(path):
        key = f"{result['key']}-edges{EDGES_VERSION}"
        cached = read_table_artifact(path, key=key, what=path.stem)   # verified; rebuilt when damaged
        if cached is not None:
            return cached
        reps, loaded, comps, attr_texts, neutral_texts, direction, source = _inputs(model_name, profile, emotion, progress)
        labels = {c.label: i for i, c in enumerate(comps)}
        top = sorted(result["attribution"], key=lambda k: -abs(result["attribution"][k]))[:EDGE_NODES]
        nodes = [labels[k] for k in top]
        t0 = time.perf_counter()
        edges = edge_effects(loaded, attr_texts[:EDGE_PROMPTS], source, nodes, comps, direction=direction)
        t1 = time.perf_counter()
        eap = edge_attribution(loaded, attr_texts[:EDGE_PROMPTS], source, nodes, comps, direction=direction)
        t2 = time.perf_counter()
        edges = edges.merge(eap, on=["src", "dst"])
        rho = float(st.spearmanr(edges.edge, edges.edge_attribution).statistic) if len(edges) > 2 else float("nan")
        write_table_artifact(path, edges, {"key": key, "nodes": top, "prompts": EDGE_PROMPTS,
                                           "spearman_exact_vs_attribution": rho, "seconds_exact": t1 - t0,
                                           "seconds_attribution": t2 - t1})
        strong = edges.reindex(edges.edge.abs().sort_values(ascending=False).index).head(20)
        plot_circuit(result, comps, loaded.n_layers, loaded.n_heads, out / f"circuit_{emotion}.png",
                     edges=list(zip(strong.src, strong.dst, strong.edge)))
    return edges


ROLE_PROMPTS = 6
ROLES_VERSION = 2          # 2: token-level OV / QK columns and the evidence sentence


@timing.timed("circuits")
def circuit_roles(model_name: str, profile: Profile, emotion: str, progress: bool = True) -> pd.DataFrame:
    """Role of each circuit head (emocheck.circuits.roles) on the first ROLE_PROMPTS attribution
    prompts; writes roles_<emotion>.csv (keyed by the circuit's key)."""
    from emocheck.circuits.exact import exact_effects
    from emocheck.circuits.figures import plot_head_tokens
    from emocheck.circuits.ov_qk import head_token_table
    from emocheck.circuits.roles import head_roles, with_token_evidence

    result = run_circuit(model_name, profile, emotion, progress=progress)
    out = out_dir(profile, model_name)
    path = out / f"roles_{emotion}.csv"
    with file_lock(path):
        key = f"{result['key']}-roles{ROLES_VERSION}"
        cached = read_table_artifact(path, key=key, what=path.stem)   # verified; rebuilt when damaged
        if cached is not None:
            return cached
        reps, loaded, comps, attr_texts, neutral_texts, direction, source = _inputs(model_name, profile, emotion, progress)
        texts = attr_texts[:ROLE_PROMPTS]
        trigger_of = dict(zip(reps.prompts.text, reps.prompts.trigger))
        heads = [c for c in (comps[i] for i in result["circuit_index"]) if c.kind == "head"]
        index = [comps.index(c) for c in heads]
        total = np.mean([exact_effects(loaded, t, source, index, direction=direction) for t in texts], 0)
        df = head_roles(loaded, texts, [trigger_of[t] for t in texts], neutral_texts, heads, direction,
                        {c.label: float(v) for c, v in zip(heads, total)})
        if heads:
            tokens = head_token_table(loaded, texts, [trigger_of[t] for t in texts], heads, direction)
            df = with_token_evidence(df, tokens)
            plot_head_tokens(df, out / f"roles_{emotion}.png", f"{model_name} {emotion}: circuit heads, token-level OV / QK")
        write_table_artifact(path, df, {"key": key, "prompts": ROLE_PROMPTS})
    return df
