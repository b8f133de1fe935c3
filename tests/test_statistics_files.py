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
    pytester.runpytest(*args, "-k", "second")
    samples = sorted(p.name for p in (stats / "samples").glob("*.csv"))
    assert len(samples) == 1 and "second" in samples[0]
    assert not (stats / "leftover_from_an_old_version.csv").exists()
    assert storage.verify_manifest(stats) == {}
    listed = set(__import__("json").loads((stats / "manifest.json").read_text())["files"])
    on_disk = {p.relative_to(stats).as_posix() for p in stats.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == on_disk
