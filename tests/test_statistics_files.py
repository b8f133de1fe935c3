"""Finding 6 (issue 15): each session's statistics/ folder holds exactly that session's files, each
vouched for by statistics/manifest.json."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401 - imported once here: pytester's in-process runs
import numpy.fft  # noqa: E402,F401   drop modules first imported inside a run, and these
import pandas  # noqa: E402,F401      extension modules cannot be imported twice
import pytest  # noqa: E402
import scipy.stats  # noqa: E402,F401

import emocheck.plugin.report  # noqa: E402,F401
import emocheck.stats  # noqa: E402,F401
from emocheck import storage  # noqa: E402

pytest_plugins = ["pytester"]

TWO = '''
from emocheck import claim

@claim("first", family="toy_files")
def test_first(evidence):
    evidence.record(treated=[1.0, 2.0, 3.0, 4.0, 5.0], control=[0.0, 1.0, 0.5, 1.5, 0.2])

@claim("second", family="toy_files")
def test_second(evidence):
    evidence.record(treated=[2.0, 2.5, 3.0, 4.0, 5.0], control=[0.0, 1.0, 0.5, 1.5, 0.2])
'''


def test_a_later_session_leaves_only_its_own_files(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_files=TWO)
    args = ["--emocheck-results", str(pytester.path / "results"), "-p", "no:cacheprovider"]
    stats = pytester.path / "results" / "ci" / "statistics"
    pytester.runpytest(*args)
    assert len(list((stats / "samples").glob("*.csv"))) == 2
    (stats / "leftover_from_an_old_version.csv").write_text("x\n")
    import os
    import time

    past = time.time() - 3600
    os.utime(stats / "leftover_from_an_old_version.csv", (past, past))
    result = pytester.runpytest(*args, "-k", "second")
    samples = sorted(p.name for p in (stats / "samples").glob("*.csv"))
    assert len(samples) == 1 and "second" in samples[0]
    # emocheck deletes only what it wrote: a file it did not write stays, named in one line
    assert (stats / "leftover_from_an_old_version.csv").read_text() == "x\n"
    result.stdout.fnmatch_lines(["*1 file(s) emocheck did not write, left untouched: leftover_from_an_old_version.csv*"])
    assert storage.verify_manifest(stats) == {}
    listed = set(__import__("json").loads((stats / "manifest.json").read_text())["files"])
    on_disk = {p.relative_to(stats).as_posix() for p in stats.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == on_disk - {"leftover_from_an_old_version.csv"}


def _args(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_files=TWO)
    return ["--emocheck-results", str(pytester.path / "results"), "-p", "no:cacheprovider"]


def _hour_old(path):
    import os
    import time

    past = time.time() - 3600
    os.utime(path, (past, past))


def test_a_users_file_in_statistics_is_left_intact_with_one_line(pytester, monkeypatch):
    args = _args(pytester, monkeypatch)
    stats = pytester.path / "results" / "ci" / "statistics"
    pytester.runpytest(*args)
    (stats / "my_notes.txt").write_text("my notes\n")
    _hour_old(stats / "my_notes.txt")
    result = pytester.runpytest(*args)
    assert result.ret == 0
    assert (stats / "my_notes.txt").read_text() == "my notes\n"
    result.stdout.fnmatch_lines(["*emocheck did not write, left untouched: my_notes.txt*"])


def test_a_symlinked_statistics_folder_is_refused_and_its_target_untouched(pytester, monkeypatch):
    args = _args(pytester, monkeypatch)
    target = pytester.path / "elsewhere"
    target.mkdir()
    (target / "older_file.csv").write_text("the user's\n")
    _hour_old(target / "older_file.csv")
    (pytester.path / "results" / "ci").mkdir(parents=True)
    (pytester.path / "results" / "ci" / "statistics").symlink_to(target, target_is_directory=True)
    result = pytester.runpytest(*args)
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "is a symbolic link" in output and "replace the link with a folder of its own" in output
    assert sorted(p.name for p in target.iterdir()) == ["older_file.csv"]
    assert (target / "older_file.csv").read_text() == "the user's\n"


K_SELECTION = '''
import os
from pathlib import Path

from emocheck import claim
from emocheck.storage import atomic_write_text

@claim("third", family="toy_phase")
def test_third(evidence):
    # what phase 4 does during a session, cold or warm: statistics/k_selection.csv gets this run's rows
    atomic_write_text(Path(os.environ["EMOCHECK_RESULTS_DIR"]) / "ci" / "statistics" / "k_selection.csv", "k\\n1\\n")
    evidence.record(treated=[1.0, 2.0, 3.0, 4.0, 5.0], control=[0.0, 1.0, 0.5, 1.5, 0.2])
'''


def test_a_phase_output_written_this_session_is_kept_and_listed(pytester, monkeypatch):
    import json

    args = _args(pytester, monkeypatch)
    monkeypatch.setenv("EMOCHECK_RESULTS_DIR", str(pytester.path / "results"))
    pytester.makepyfile(test_phase=K_SELECTION)
    stats = pytester.path / "results" / "ci" / "statistics"
    for _ in range(2):
        assert pytester.runpytest(*args).ret == 0
        assert (stats / "k_selection.csv").read_text() == "k\n1\n"
        assert "k_selection.csv" in json.loads((stats / "manifest.json").read_text())["files"]
        assert storage.verify_manifest(stats) == {}
    # a session that did not run phase 4 removes the earlier session's table (it listed it)
    _hour_old(stats / "k_selection.csv")
    assert pytester.runpytest(*args, "-k", "not third").ret == 0
    assert not (stats / "k_selection.csv").exists()
