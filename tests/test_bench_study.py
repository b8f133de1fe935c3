"""benchmarks/bench_study.py: its pieces (scaling, merging, restricting a design) and mode 1 (a session.json)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_study  # noqa: E402
from study_levers import restrict  # noqa: E402

from emocheck.patching.conditions import Condition  # noqa: E402


def _summary():
    m = {"seconds": 2.0, "inclusive_seconds": 3.0, "cpu_seconds": 1.5, "tokens": 10, "flops": 4e9, "calls": 2}
    return {"run": "r", "processes": 1, "total_seconds": 2.0, "total_cpu_seconds": 1.5,
            "phases": {"generation": {**m, "models": {"smollm2-135m": dict(m)}}}}


def test_scale_and_merge():
    s = bench_study.scale(_summary(), 10.0)
    g = s["phases"]["generation"]
    assert g["seconds"] == 20.0 and g["tokens"] == 100 and g["flops"] == 4e10 and g["calls"] == 2
    assert g["models"]["smollm2-135m"]["cpu_seconds"] == 15.0 and s["total_seconds"] == 20.0
    other = _summary()
    other["phases"]["generation"]["models"] = {"gemma3-270m": other["phases"]["generation"]["models"].pop("smollm2-135m")}
    both = bench_study.merge([_summary(), other])
    assert set(both["phases"]["generation"]["models"]) == {"smollm2-135m", "gemma3-270m"}
    assert both["phases"]["generation"]["seconds"] == 4.0 and both["total_seconds"] == 4.0


def test_restrict_keeps_the_design_on_a_subset():
    z = torch.zeros(3)
    conds = [Condition("baseline", "baseline", None, 1, 0.0, z),
             Condition("random:a", "random", "a", 1, 1.0, z, prompt_ids=("p1",)),
             Condition("random:a", "random", "a", 1, 1.0, z, prompt_ids=("p2",)),
             Condition("neg:a", "negated", "a", 1, 1.0, z, prompt_ids=("p1", "p3"))]
    out = restrict(conds, ["p1"])
    assert [(c.name, c.prompt_ids) for c in out] == [("baseline", None), ("random:a", ("p1",)), ("neg:a", ("p1",))]


def test_session_mode_prints_the_breakdown(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_study.breakdown, "measure_rates", lambda models, seconds=0.5, shapes=None: {"smollm2-135m": 2e9})
    (tmp_path / "session.json").write_text(json.dumps(
        {"workers": 0, "timing": {"session_wall_s": {"run": 60.0}, "phases": _summary()}}))
    assert bench_study.main(["--session", str(tmp_path / "session.json"), "--results", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("generation"))
    assert "smollm2-135m" in line and line.rstrip().endswith("1.00x")        # 2 s against 4 GFLOP / 2 GFLOP/s
    assert "generation + fluency 2.0s vs floor 2.0s = 1.00x" in out and "load average" in out
    assert "session wall 1.0 min" in out
    saved = json.loads((tmp_path / "out" / "ci" / "benchmarks" / "study_breakdown.json").read_text())
    assert not (tmp_path / "study_breakdown.json").exists()
    assert saved["generation"][0]["ratio_to_floor"] == pytest.approx(1.0)
