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
    assert line.startswith("timing (1 process(es)): extraction") and "m1" in line and "m2" in line


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
    assert timing.records()[0]["model"] == tiny_llama.name
