"""circuit_edges / circuit_roles (emocheck.circuits.analysis) end to end on a tiny llama: the shared
inputs are drawn as discovery draws them, both tables are written, verified and read back without
touching the model again, and the edge table holds the exact and first-order edge of every pair."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import torch

EMOTIONS = ("gratitude", "anger", "apology")


def _fake_reps(d_model: int):
    words = {"gratitude": "thank you", "anger": "furious", "apology": "so sorry", "neutral": "the table"}
    rows = [{"text": f"I said {w} to them {i}", "emotion": e, "split": "train", "trigger": w}
            for e, w in words.items() for i in range(10)]
    direction = torch.linspace(-1, 1, d_model)
    vectors = types.SimpleNamespace(vector=lambda *a, **k: direction)
    return types.SimpleNamespace(prompts=pd.DataFrame(rows), vectors=vectors)


def test_edges_and_roles_on_a_tiny_model(monkeypatch, results_tmp):
    import emocheck.circuits.analysis as analysis
    from emocheck.circuits.components import all_components
    from emocheck.profiles import get_profile
    from emocheck.testing import tiny_model

    m = tiny_model("llama", n_layers=2, seed=3)
    comps = all_components(m)
    circuit = [i for i, c in enumerate(comps) if c.kind == "head"][:3] + [len(comps) - 1]
    result = {"key": "tiny-circuit", "circuit_index": circuit,
              "attribution": {c.label: float(len(comps) - i) for i, c in enumerate(comps)}}
    monkeypatch.setattr(analysis, "run_circuit", lambda *a, **k: result)
    monkeypatch.setattr("emocheck.representations.build.build_representations",
                        lambda *a, **k: _fake_reps(m.d_model))
    monkeypatch.setattr("emocheck.models.registry.load_model", lambda name: m)
    monkeypatch.setattr("emocheck.circuits.figures.plot_circuit", lambda *a, **k: None)
    profile = get_profile("smoke")

    edges = analysis.circuit_edges("tiny", profile, "anger", progress=False)
    n_nodes = min(analysis.EDGE_NODES, len(comps))
    assert len(edges) > 0 and {"src", "dst", "edge", "edge_attribution"} <= set(edges.columns)
    assert np.isfinite(edges[["edge", "edge_attribution"]].to_numpy()).all()
    assert set(edges.src) | set(edges.dst) <= {c.label for c in comps[:n_nodes]} | set(result["attribution"])
    roles = analysis.circuit_roles("tiny", profile, "anger", progress=False)
    heads = [comps[i].label for i in circuit if comps[i].kind == "head"]
    assert sorted(roles.component) == sorted(heads) and roles["role"].notna().all()

    # read back through the storage rule: the model is not touched again, the tables are equal
    monkeypatch.setattr("emocheck.models.registry.load_model",
                        lambda name: (_ for _ in ()).throw(AssertionError("recomputed")))
    pd.testing.assert_frame_equal(analysis.circuit_edges("tiny", profile, "anger", progress=False), edges)
    pd.testing.assert_frame_equal(analysis.circuit_roles("tiny", profile, "anger", progress=False), roles)
