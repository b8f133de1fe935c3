"""emocheck.timing: per-phase records, one file per process, summary across processes of one run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emocheck import timing

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("EMOCHECK_RESULTS_DIR", raising=False)
    monkeypatch.delenv("EMOCHECK_PROFILE", raising=False)
    saved = dict(timing._target)
    timing.reset()
    timing.configure(None, None)
    yield
    timing.reset()
    timing._target.update(saved)


def test_long_phase_is_written_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "FLUSH_PHASE_SECONDS", 0.0)
    timing.configure(tmp_path, "ci")
    with timing.phase("figures"):
        pass
    (path,) = (tmp_path / "ci" / "timing").glob("*.json")
    assert json.loads(path.read_text())["records"][0]["phase"] == "figures"


def test_phase_records_time_tokens_and_survives_errors(tmp_path):
    with timing.phase("generation", model="m1", tokens=10) as rec:
        time.sleep(0.02)
        rec["tokens"] = 12
    with pytest.raises(RuntimeError):
        with timing.phase("fluency", model="m1"):
            raise RuntimeError("boom")
    recs = timing.records()
    assert [r["phase"] for r in recs] == ["generation", "fluency"]
    assert recs[0]["seconds"] >= 0.02 and recs[0]["tokens"] == 12
    assert timing.flush() is None                         # no location: memory only
    assert not list(tmp_path.iterdir())


def test_file_per_process_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCHECK_RUN_ID", "run-a")
    timing.configure(tmp_path, "ci")
    with timing.phase("extraction", model="m1", tokens=5):
        pass
    with timing.phase("generation", model="m1", tokens=7):
        time.sleep(0.01)
    with timing.phase("generation", model="m2", tokens=3):
        pass
    timing.flush()                                        # short phases are written lazily
    files = list((tmp_path / "ci" / "timing").glob("*.json"))
    assert len(files) == 1 and str(os.getpid()) in files[0].name
    data = json.loads(files[0].read_text())
    assert data["run"] == "run-a" and len(data["records"]) == 3
    s = timing.summary(tmp_path, "ci")
    gen = s["phases"]["generation"]
    assert gen["calls"] == 2 and gen["tokens"] == 10
    assert set(gen["models"]) == {"m1", "m2"} and gen["models"]["m1"]["seconds"] >= 0.01
    assert list(s["phases"]) == ["extraction", "generation"]          # pipeline order
    assert abs(s["total_seconds"] - sum(p["seconds"] for p in s["phases"].values())) < 1e-9
    line = timing.one_line(s)
    # largest self time first: generation (10 ms) before extraction
    assert line.startswith("timing (1 process(es)): generation") and "m1" in line and "m2" in line
    assert "extraction" in line and "s CPU" in line


def test_summary_adds_processes_of_newest_run_only(tmp_path, monkeypatch):
    """Two other processes (as xdist workers would) write their own files; an older run is ignored."""
    code = ("import sys, time; from emocheck import timing\n"
            "with timing.phase('generation', model=sys.argv[1], tokens=4): time.sleep(0.01)\n")
    def worker(model, run):
        env = dict(os.environ, EMOCHECK_RESULTS_DIR=str(tmp_path), EMOCHECK_PROFILE="ci", EMOCHECK_RUN_ID=run,
                   PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-c", code, model], env=env, check=True, cwd=ROOT)
    worker("old", "run-old")
    time.sleep(0.05)
    worker("m1", "run-new")
    worker("m2", "run-new")
    s = timing.summary(tmp_path, "ci")
    assert s["run"] == "run-new" and s["processes"] == 2
    assert set(s["phases"]["generation"]["models"]) == {"m1", "m2"}
    assert s["phases"]["generation"]["tokens"] == 8
    old = timing.summary(tmp_path, "ci", run="run-old")
    assert set(old["phases"]["generation"]["models"]) == {"old"}


def test_env_location_from_plugin_and_corrupt_file_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCHECK_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("EMOCHECK_PROFILE", "smoke")
    (tmp_path / "smoke" / "timing").mkdir(parents=True)
    (tmp_path / "smoke" / "timing" / "broken.json").write_text("{not json")
    with timing.phase("statistics"):
        pass
    timing.flush()
    s = timing.summary(tmp_path, "smoke")
    assert s["processes"] == 1 and s["phases"]["statistics"]["calls"] == 1
    assert timing.one_line(timing.summary(tmp_path, "nothing-here")) == "timing: nothing recorded"


def test_timed_decorator_names_the_model(tmp_path):
    class Loaded:
        name = "tiny-x"

    @timing.timed("extraction")
    def work(model, n):
        return n * 2

    assert work(Loaded(), 3) == 6
    r = timing.records()[-1]
    assert r["phase"] == "extraction" and r["model"] == "tiny-x"


def test_extraction_is_timed(tiny_llama):
    from emocheck.representations.extraction import extract_activations

    extract_activations(tiny_llama, ["hello there", "hi"], layers=[0], progress=False)
    assert [r["phase"] for r in timing.records()] == ["extraction"]
    rec = timing.records()[0]
    assert rec["model"] == tiny_llama.name
    # real tokens only (no padding), through block 0 only (the pass stops after the last layer read)
    n_tok = sum(len(tiny_llama.tokenizer(t)["input_ids"]) for t in ["hello there", "hi"])
    assert rec["tokens"] == n_tok
    from emocheck.compute import ModelShape, token_flops

    shape = ModelShape.from_config(tiny_llama.model.config)
    assert rec["flops"] == pytest.approx(n_tok * 2.0 * shape.block_params() / shape.n_layers)
    assert token_flops(tiny_llama) == pytest.approx(shape.flops_per_token(True))
    assert token_flops(tiny_llama, with_logits=False) == pytest.approx(shape.flops_per_token(False))


def test_count_adds_work_to_the_innermost_phase():
    timing.count(tokens=5)                                # outside any phase: nothing happens
    with timing.phase("generation", model="m"):
        timing.count(tokens=3, flops=1e6)
        with timing.phase("fluency"):
            timing.count(tokens=2)
        timing.count(tokens=4)
    recs = {r["phase"]: r for r in timing.records()}
    assert recs["generation"]["tokens"] == 7 and recs["generation"]["flops"] == 1e6
    assert recs["fluency"]["tokens"] == 2


def test_nested_phases_are_not_counted_twice(tmp_path):
    """A phase opened inside another is subtracted from the outer one's self time (wall and CPU); the
    summary adds self times, so its total is the wall time covered, and the inner one inherits the model."""
    timing.configure(tmp_path, "ci")

    def spin(seconds):                      # CPU work, so CPU time is measurable too
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    t0 = time.perf_counter()
    with timing.phase("q1_write_in", model="m1"):
        spin(0.05)
        with timing.phase("extraction"):
            spin(0.1)
            with timing.phase("figures"):
                spin(0.05)
        with timing.phase("statistics", model="m2"):
            spin(0.03)
    wall = time.perf_counter() - t0
    recs = {r["phase"]: r for r in timing.records()}
    assert recs["extraction"]["model"] == "m1" and recs["figures"]["model"] == "m1"     # inherited
    assert recs["statistics"]["model"] == "m2" and recs["figures"]["parent"] == "extraction"
    ext, outer = recs["extraction"], recs["q1_write_in"]
    assert ext["seconds"] >= 0.15 and 0.1 <= ext["self_seconds"] < ext["seconds"] - 0.04
    assert outer["seconds"] >= 0.23 and 0.05 <= outer["self_seconds"] < 0.05 + 0.04
    assert abs(outer["self_seconds"] + ext["self_seconds"] + recs["figures"]["self_seconds"]
               + recs["statistics"]["self_seconds"] - outer["seconds"]) < 1e-6
    # CPU time depends on what else the machine runs; its bookkeeping is exact
    assert 0 < ext["self_cpu_seconds"] <= ext["cpu_seconds"] <= outer["cpu_seconds"]
    assert abs(sum(r["self_cpu_seconds"] for r in recs.values()) - outer["cpu_seconds"]) < 1e-6
    timing.flush()
    s = timing.summary(tmp_path, "ci")
    assert abs(s["total_seconds"] - outer["seconds"]) < 1e-6 and s["total_seconds"] <= wall
    assert abs(s["phases"]["extraction"]["seconds"] - ext["self_seconds"]) < 1e-9
    assert abs(s["phases"]["extraction"]["inclusive_seconds"] - ext["seconds"]) < 1e-9
    assert 0 < s["total_cpu_seconds"] <= wall + 0.05
    assert timing.current() is None


def test_old_records_without_self_time_count_whole(tmp_path):
    path = tmp_path / "ci" / "timing" / "old.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "run": "r", "updated": 1.0,
                                "records": [{"phase": "generation", "model": "m", "seconds": 2.5, "tokens": 3}]}))
    s = timing.summary(tmp_path, "ci")
    assert s["phases"]["generation"]["seconds"] == 2.5 and s["phases"]["generation"]["inclusive_seconds"] == 2.5


def test_timed_takes_a_model_name_or_a_function_of_the_arguments():
    @timing.timed("heads")
    def screen(model_name, profile):
        return profile

    @timing.timed("alignment", model=lambda a, b, *rest: f"{a}_vs_{b}")
    def align(a, b, profile):
        return a

    assert screen("tiny-a", "ci") == "ci" and align("x", "y", "ci") == "x"
    assert [(r["phase"], r["model"]) for r in timing.records()] == [("heads", "tiny-a"), ("alignment", "x_vs_y")]


def test_evaluators_and_figures_are_timed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emocheck.evaluators import get_evaluator
    from emocheck.storage import atomic_save_figure

    with timing.phase("generation", model="m1"):
        get_evaluator("sentiment-vader").score(["what a lovely day", "this is awful"])
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        atomic_save_figure(fig, tmp_path / "f.png")
    recs = {r["phase"]: r for r in timing.records()}
    assert recs["evaluators"]["texts"] == 2 and recs["evaluators"]["model"] == "m1"
    assert recs["figures"]["model"] == "m1" and (tmp_path / "f.png").stat().st_size > 0


def test_prune_keeps_the_newest_runs_and_this_one(tmp_path, monkeypatch):
    """Seven runs' files (two processes each): prune keeps the newest three and this process's run,
    however old its file, and leaves unreadable files alone."""
    folder = tmp_path / "ci" / "timing"
    folder.mkdir(parents=True)
    monkeypatch.setenv("EMOCHECK_RUN_ID", "run-0")          # this process's run is the oldest
    for k in range(7):
        for proc in range(2):
            (folder / f"h-{k}-{proc}.json").write_text(json.dumps(
                {"version": 2, "run": f"run-{k}", "updated": 1000.0 + k + proc / 10, "records": []}))
    (folder / "broken.json").write_text("{not json")
    deleted = timing.prune(tmp_path, "ci", keep_runs=3)
    left = sorted(p.name for p in folder.glob("*.json"))
    assert left == sorted(["broken.json"] + [f"h-{k}-{p}.json" for k in (0, 4, 5, 6) for p in range(2)])
    assert sorted(p.name for p in deleted) == sorted(f"h-{k}-{p}.json" for k in (1, 2, 3) for p in range(2))
    assert timing.summary(tmp_path, "ci")["run"] == "run-6"
    assert timing.prune(tmp_path / "nowhere", "ci") == []
