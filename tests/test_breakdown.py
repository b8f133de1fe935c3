"""emocheck.breakdown: a timing summary beside the compute floor."""
from __future__ import annotations

import json

import pytest

from emocheck import breakdown, timing
from emocheck.errors import ConfigError


@pytest.fixture
def summ(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOCHECK_RESULTS_DIR", raising=False)
    saved = dict(timing._target)
    timing.reset()
    timing.configure(tmp_path, "ci")
    with timing.phase("q3_residual_patching", model="m1"):
        with timing.phase("generation", tokens=100, flops=2e9):
            pass
        with timing.phase("fluency", tokens=50, flops=1e9):
            pass
    with timing.phase("alignment", model="m1_vs_m2"):
        pass
    timing.flush()
    yield timing.summary(tmp_path, "ci")
    timing.reset()
    timing._target.update(saved)


def test_rows_floor_ratio_and_generation(summ):
    rates = {"m1": 1e9}                                   # 1 GFLOP/s
    rows = breakdown.phase_rows(summ, rates)
    gen = next(r for r in rows if r["phase"] == "generation")
    assert gen["floor_seconds"] == pytest.approx(2.0) and gen["tokens"] == 100 and gen["gflop"] == pytest.approx(2.0)
    assert gen["ratio_to_floor"] == pytest.approx(gen["seconds"] / 2.0)
    outer = next(r for r in rows if r["phase"] == "q3_residual_patching")
    assert outer["floor_seconds"] is None and outer["ratio_to_floor"] is None
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert [r["seconds"] for r in rows] == sorted((r["seconds"] for r in rows), reverse=True)
    g = breakdown.generation_ratio(summ, rates, "m1")
    secs = summ["phases"]["generation"]["seconds"] + summ["phases"]["fluency"]["seconds"]
    assert g["floor_seconds"] == pytest.approx(3.0) and g["ratio_to_floor"] == pytest.approx(secs / 3.0)
    assert breakdown.generation_ratio(summ, {}, "m1") is None
    assert breakdown.models_of(summ) == ["m1"]
    text = breakdown.format_rows(rows, min_seconds=0.0)
    gen_line = next(x for x in text.splitlines() if x.startswith("generation"))
    assert "m1_vs_m2" in text and gen_line.endswith("x") and "100" in gen_line


def test_load_summary_from_session_json_folder_or_timing_files(summ, tmp_path):
    stats = tmp_path / "ci" / "statistics"
    stats.mkdir(parents=True)
    (stats / "session.json").write_text(json.dumps(
        {"workers": 2, "timing": {"session_wall_s": {"run": 12.0}, "phases": summ}}))
    for where in (stats / "session.json", stats):
        got = breakdown.load_summary(where)
        assert got["phases"].keys() == summ["phases"].keys() and got["session_wall_s"] == {"run": 12.0}
    assert breakdown.load_summary(tmp_path, "ci")["phases"].keys() == summ["phases"].keys()
    (stats / "session.json").write_text(json.dumps({"timing": {"phases": None}}))
    with pytest.raises(ConfigError, match="no timing summary"):
        breakdown.load_summary(stats)
    with pytest.raises(ConfigError, match="no timing files"):
        breakdown.load_summary(tmp_path, "other")
    with pytest.raises(ConfigError, match="give a session.json"):
        breakdown.load_summary(tmp_path / "missing")


def test_token_only_generation_records_get_an_estimated_floor(summ):
    from emocheck.compute import ModelShape

    shape = ModelShape(n_layers=2, d_model=8, d_ff=16, n_heads=2, n_kv_heads=2, head_dim=4, vocab=50)
    for p in summ["phases"].values():
        for m in [p, *p["models"].values()]:
            m["flops"] = 0.0                                # as an emocheck that counted tokens only
    rows = breakdown.phase_rows(summ, {"m1": 1e9}, {"m1": shape})
    gen = next(r for r in rows if r["phase"] == "generation")
    assert gen["flops_estimated"] and gen["gflop"] == pytest.approx(100 * shape.flops_per_token(True) / 1e9)
    assert breakdown.phase_rows(summ, {"m1": 1e9})[0]["floor_seconds"] is None        # no shape: no floor
    g = breakdown.generation_ratio(summ, {"m1": 1e9}, "m1", {"m1": shape})
    assert g["floor_seconds"] == pytest.approx(150 * shape.flops_per_token(True) / 1e9)
