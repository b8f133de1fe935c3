"""`emocheck quickstart`: the built-in quickstart profile and the claims it runs (collection only; no model
is loaded here; the timed run on SmolLM2 is in docs/report.md and the task report)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emocheck import cli
from emocheck.patching.experiment import settings as patching_settings
from emocheck.plugin.questions import question_of
from emocheck.profiles import BUILTIN_PROFILES, PROFILES, QUICKSTART_CLAIMS, get_profile

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_profile_is_a_small_builtin_on_smollm2():
    q = get_profile("quickstart")
    assert "quickstart" in BUILTIN_PROFILES and q.models == ("smollm2-135m",)
    smoke, ci = PROFILES["smoke"], PROFILES["ci"]
    # no bigger than smoke anywhere that costs time, so it cannot be slower than smoke per claim
    assert q.prompts_per_emotion <= smoke.prompts_per_emotion and q.generation_prompts <= smoke.generation_prompts
    assert q.new_tokens <= smoke.new_tokens and q.bootstrap_resamples <= ci.bootstrap_resamples
    st = patching_settings(q)
    assert st["secondary"] == () and st["tuning_prompts"] <= 4 and len(st["alphas"]) <= 2
    assert st["rows_per_batch"] > 0 and set(st) == set(patching_settings(smoke))


def test_quickstart_collects_real_q1_and_q3_claims_only():
    env = {k: v for k, v in os.environ.items() if k not in ("EMOCHECK_PROFILE", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *cli.quickstart_args([])[len(QUICKSTART_CLAIMS):],
                          *QUICKSTART_CLAIMS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ids = [line for line in res.stdout.splitlines() if "::" in line]
    for test in QUICKSTART_CLAIMS:                      # every listed test exists and is collected
        assert any(i.startswith(test + "[") for i in ids), test
    assert all("[smollm2-135m-" in i for i in ids)
    modules = {i.split("::")[0] for i in ids}
    assert {Path(m).stem.split("_")[1] for m in modules} == {"q1", "q3"}
    # 3 emotions x 3 positions (Q1), 5 + 5 steering claims and 6 fluency claims (Q3)
    assert len(ids) == 9 + 10 + 6, ids
    # the secondary conditions are not in the quickstart design, so their claims are not declared at all
    assert not any("prompting" in i or "dose_matched" in i or "subspace" in i for i in ids)


def test_quickstart_families_answer_q1_and_q3():
    from emocheck.plugin.questions import by_question

    families = ["q1_vs_neutral", "q3_residual_patching", "q3_patching_fluency"]
    assert [q.key for q, _ in by_question(families)] == ["Q1", "Q3"]
    assert question_of("q3_patching_fluency").title == "Does steering change what the model writes?"


def test_quickstart_outside_a_checkout_says_where_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["quickstart"]) == 4
    err = capsys.readouterr().err
    assert "hypotheses/test_q1_write_in.py not found" in err and "root of an emocheck checkout" in err
