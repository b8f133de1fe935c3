"""`emocheck compare A B`: the verdict and d changes between two sessions, and the exit status CI gates on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emocheck import cli
from emocheck.plugin.compare import compare_sessions, exit_status, format_comparison
from emocheck.storage import write_manifest

ROOT = Path(__file__).resolve().parents[1]


def _session(folder: Path, claims, *, manifest: bool = True) -> Path:
    """results/<profile>/statistics/session.json (+ manifest.json, as a claims session seals it)."""
    stats = folder / "ci" / "statistics"
    stats.mkdir(parents=True)
    path = stats / "session.json"
    path.write_text(json.dumps({"format": "emocheck-session", "claims": [
        {"claim_id": k, "verdict": v, "d": d, "family": "f"} for k, v, d in claims]}))
    if manifest:
        write_manifest(stats, [path])
    return path


def test_same_verdicts_exit_0_and_the_table_lists_the_d_changes(tmp_path, capsys):
    a = _session(tmp_path / "a", [("c1", "supported", 0.50), ("c2", "not supported", 0.10)])
    b = _session(tmp_path / "b", [("c1", "supported", 0.53), ("c2", "not supported", 0.10)])
    assert cli.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "2 claims in both, 0 verdicts differ, largest |d| difference 3.00e-02 (c1)" in out
    assert "largest d changes (top 1 of 1)" in out and "+0.500" in out and "+0.530" in out


def test_a_changed_verdict_of_any_vocabulary_exits_1_with_both_verdicts_in_the_table(tmp_path, capsys):
    # the verdict is whatever string session.json holds (another version may write three verdicts)
    a = _session(tmp_path / "a", [("c1", "supported", 0.5), ("c2", "inconclusive", 0.1), ("c3", "refuted", 0.0)])
    b = _session(tmp_path / "b", [("c1", "supported", 0.5), ("c2", "refuted", 0.02), ("c3", "refuted", 0.0)])
    # folders work too: results/<profile> and its statistics folder
    assert cli.main(["compare", str(tmp_path / "a" / "ci"), str(b.parent)]) == 1
    captured = capsys.readouterr()
    assert "1 verdicts differ" in captured.out
    line = next(ln for ln in captured.out.splitlines() if ln.startswith("c2 "))
    assert line.split()[:3] == ["c2", "inconclusive", "refuted"]
    assert "the sessions differ (1 verdict change(s)" in captured.err


def test_claims_on_one_side_fail_unless_allowed_and_a_d_threshold_can_gate(tmp_path, capsys):
    a = _session(tmp_path / "a", [("c1", "supported", 0.5), ("c3", "supported", 1.0)])
    b = _session(tmp_path / "b", [("c1", "supported", 0.7)])
    assert cli.main(["compare", str(a), str(b)]) == 1
    assert "only in A (1):\n  c3" in capsys.readouterr().out
    assert cli.main(["compare", str(a), str(b), "--allow-missing"]) == 0
    assert cli.main(["compare", str(a), str(b), "--allow-missing", "--max-d-diff", "0.1"]) == 1
    assert cli.main(["compare", str(a), str(b), "--allow-missing", "--max-d-diff", "0.3"]) == 0


def test_a_d_on_one_side_only_is_an_infinite_difference(tmp_path):
    a = _session(tmp_path / "a", [("c1", "not supported", None)], manifest=False)
    b = _session(tmp_path / "b", [("c1", "not supported", float("nan"))], manifest=False)
    c = _session(tmp_path / "c", [("c1", "not supported", 0.2)], manifest=False)
    assert compare_sessions(a, b).d_changes == []            # none on either side: equal
    r = compare_sessions(a, c)
    assert r.max_abs_d_diff == float("inf") and r.max_claim == "c1" and exit_status(r) == 0
    assert "inf" in format_comparison(r)


def test_a_damaged_or_missing_session_is_one_clear_error(tmp_path, capsys):
    a = _session(tmp_path / "a", [("c1", "supported", 0.5)])
    b = _session(tmp_path / "b", [("c1", "supported", 0.5)])
    b.write_text(b.read_text().replace("0.5", "0.9"))        # edited after the session sealed it
    assert cli.main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "does not match the checksum" in err and "manifest.json" in err
    assert cli.main(["compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(a), str(tmp_path / "empty")]) == 2
    assert "holds no session.json" in capsys.readouterr().err


def test_the_installed_command_exits_non_zero_for_ci(tmp_path):
    a = _session(tmp_path / "a", [("c1", "supported", 0.5)])
    b = _session(tmp_path / "b", [("c1", "not supported", 0.1)])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "emocheck.cli", "compare", str(a), str(b)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "supported" in r.stdout and "not supported" in r.stdout


@pytest.mark.parametrize("argv", [["compare", "a", "b", "--", "-k", "x"]])
def test_compare_takes_no_pytest_arguments(argv, capsys):
    assert cli.main(argv) == 2
    assert "takes no pytest arguments" in capsys.readouterr().err
