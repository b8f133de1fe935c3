"""Example continuations in the report and the research-question grouping.

The examples of a claim about generated text are chosen by a fixed rule (the prompts at the 10th, 50th
and 90th percentile of the judged treated - control difference), travel from the claim to the
controller like its metrics, are written to statistics/examples/<claim>.json (sealed in the manifest)
and shown side by side in report.html's detail pane and once per claim in report.md.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emocheck.errors import EvidenceError
from emocheck.patching.examples import example_continuations, percentile_positions
from emocheck.plugin.claims import MAX_EXAMPLES, Evidence, claim_spec  # noqa: F401
from emocheck.plugin.questions import OTHER, QUESTIONS, by_question, question_of

pytest_plugins = ["pytester"]


def _table(n: int = 21, seed: int = 0, draws: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """A samples table (phase 5's columns) of n prompts: treated 'T', control 'C' (``draws`` rows per
    prompt, as random circuits), with a known per-prompt difference."""
    rng = np.random.default_rng(seed)
    diff = rng.permutation(np.arange(n, dtype=float))          # prompt i's difference; all distinct
    rows = []
    for i in range(n):
        sid = f"p{i:02d}"
        rows.append({"sample_id": sid, "prompt": f"opening {i}", "prefix": "", "condition": "T",
                     "text": f"treated text {i}", "politeness": 1.0 + diff[i], "nll": 2.0 + i / 100, "rep3": 0.0})
        for k in range(draws):
            rows.append({"sample_id": sid, "prompt": f"opening {i}", "prefix": "I am so grateful. " if k == 0 else "",
                         "condition": "C", "text": f"control text {i} draw {k}", "politeness": 1.0,
                         "nll": 2.5, "rep3": 0.1, "draw": draws - 1 - k})
    return pd.DataFrame(rows), diff


def test_percentile_positions_are_nearest_rank_and_distinct():
    assert percentile_positions(21) == [(10, 2), (50, 10), (90, 18)]
    assert percentile_positions(1) == [(10, 0)]                 # one prompt: shown once
    assert percentile_positions(2) == [(10, 0), (50, 1)]        # 50 and 90 share position 1: named once, by 50
    assert percentile_positions(0) == []


def test_examples_are_the_percentile_prompts_with_their_texts_and_scores():
    table, diff = _table()
    ids = [f"p{i:02d}" for i in range(21)]
    ex = example_continuations(table, "T", "C", "politeness", ids, diff)
    order = np.argsort(diff)
    assert [r["sample_id"] for r in ex["rows"]] == [ids[order[2]], ids[order[10]], ids[order[18]]]
    assert [r["rank"] for r in ex["rows"]] == [3, 11, 19] and ex["n_judged"] == 21
    for r in ex["rows"]:
        i = int(r["sample_id"][1:])
        assert r["difference"] == diff[i] and r["prompt"] == f"opening {i}"
        assert r["treated"] == {"condition": "T", "text": f"treated text {i}", "score": 1.0 + diff[i],
                                "nll": 2.0 + i / 100, "rep3": 0.0}
        assert r["control"]["text"] == f"control text {i} draw 0" and r["control"]["score"] == 1.0
        assert r["control"]["prefix"] == "I am so grateful. "     # a prompting condition shows its prefix
    assert "10th, 50th, 90th percentile" in ex["rule"] and "21 judged prompts" in ex["rule"]
    # the choice depends on the numbers only: the same examples whatever order the table and ids come in
    again = example_continuations(table.sample(frac=1, random_state=3), "T", "C", "politeness", ids[::-1], diff[::-1])
    assert again == ex


def test_with_several_draws_the_lowest_draw_is_shown_and_named():
    table, diff = _table(n=5, draws=3)
    ex = example_continuations(table, "T", "C", "politeness", [f"p{i:02d}" for i in range(5)], diff, note="n")
    for r in ex["rows"]:
        assert r["control"]["draw"] == 0 and r["control"]["text"].endswith("draw 2")   # draw 0 is the third row
    assert ex["rule"].endswith("; n")


def test_examples_ties_break_by_prompt_id_and_long_texts_are_cut():
    table, _ = _table(n=3)
    table.loc[0, "text"] = "x" * 5000
    ex = example_continuations(table, "T", "C", "politeness", ["p02", "p00", "p01"], [0.0, 0.0, 0.0],
                               percentiles=(0,))
    assert ex["rows"][0]["sample_id"] == "p00"
    assert len(ex["rows"][0]["treated"]["text"]) == 400 and ex["rows"][0]["treated"]["text"].endswith("...")


def test_evidence_keeps_examples_as_plain_values_and_refuses_bad_ones():
    table, diff = _table(n=7)
    ids = [f"p{i:02d}" for i in range(7)]
    ex = example_continuations(table, "T", "C", "politeness", ids, diff)
    ex["rows"][0]["treated"]["score"] = np.float32(0.5)          # numpy scalars become floats
    ev = Evidence("t")
    ev.record(treated=diff, control=np.zeros(7), examples=ex)
    assert type(ev.examples["rows"][0]["treated"]["score"]) is float
    json.dumps(ev.examples)                                       # travels to the controller as builtins
    for bad, why in [({"rows": []}, "rule"), ({"rule": "r", "rows": "x"}, "list of dicts"),
                     ({"rule": "r", "rows": [{}] * (MAX_EXAMPLES + 1)}, "at most"),
                     ({"rule": "r", "rows": [{"x": object()}]}, "must be text"), ("text", "must be a dict")]:
        with pytest.raises(EvidenceError, match=why):
            Evidence("t").record(treated=[1.0, 2.0], control=[0.0, 1.0], examples=bad)
    ev = Evidence("t")
    ev.record_null(2.0, [0.0, 1.0, -1.0], examples={"rule": "r", "rows": [{"label": "x"}]})
    assert ev.examples == {"rule": "r", "rows": [{"label": "x"}]}


def test_every_claim_family_answers_a_named_question():
    families = set()
    for path in Path(__file__).resolve().parent.parent.joinpath("hypotheses").glob("test_*.py"):
        text = path.read_text()
        consts = dict(re.findall(r'^([A-Z_]+) = "([a-z0-9_]+)"', text, flags=re.M))
        families |= set(re.findall(r'family="([a-z0-9_]+)"', text))
        families |= {consts[c] for c in re.findall(r"family=([A-Z_]+)", text)}
    assert len(families) > 20
    assert {f for f in families if question_of(f) is OTHER} == set()
    keys = {question_of(f).key for f in families}
    assert keys == {q.key for q in QUESTIONS}                     # and every question has claims
    assert question_of("my_own_family") is OTHER
    grouped = by_question(["q3_b", "zz", "q1_a", "q3_a"])
    assert [(q.key, names) for q, names in grouped] == [("Q1", ["q1_a"]), ("Q3", ["q3_a", "q3_b"]), ("Other", ["zz"])]


TEXT_CLAIM = '''
import numpy as np
import pandas as pd
import pytest
from emocheck import claim
from emocheck.patching.examples import example_continuations

@claim("the vector raises politeness on {model_name}", family="q3_toy", paired=True, min_d=0.2)
def test_steer(model_name, evidence):
    rng = np.random.default_rng(5)
    n = 11
    t, c = rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)
    ids = [f"p{i}" for i in range(n)]
    table = pd.DataFrame(
        [{"sample_id": s, "prompt": f"Write about {s}", "condition": "gratitude", "text": f"<b>thanks</b> {s}",
          "politeness": a, "nll": 2.0, "rep3": 0.0} for s, a in zip(ids, t)]
        + [{"sample_id": s, "prompt": f"Write about {s}", "condition": "random:gratitude", "text": f"plain {s}",
            "politeness": b, "nll": 2.1, "rep3": 0.0} for s, b in zip(ids, c)])
    evidence.record(treated=t, control=c, sample_ids=ids,
                    examples=example_continuations(table, "gratitude", "random:gratitude", "politeness", ids, t - c))

@claim("a representation claim on {model_name}", family="q1_toy", min_d=0.1)
def test_rep(model_name, evidence):
    rng = np.random.default_rng(6)
    evidence.record(treated=rng.normal(2, 1, 20), control=rng.normal(0, 1, 20))
'''


def test_examples_reach_the_files_the_html_and_the_markdown(pytester, monkeypatch):
    import os

    import emocheck
    from emocheck.storage import verify_manifest

    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    root = str(Path(emocheck.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    pytester.makepyfile(test_q_toy=TEXT_CLAIM)
    res = pytester.runpytest("--emocheck-results", str(pytester.path / "results"), "-p", "no:cacheprovider",
                             "-p", "no:hypothesispytest", "--emocheck-models", "a")
    res.assert_outcomes(passed=2)
    stats_dir = pytester.path / "results" / "ci" / "statistics"
    eff = pd.read_csv(stats_dir / "effect_sizes.csv").set_index("short_id")
    ex_file = eff.loc["test_q_toy::test_steer[a]", "examples_file"]
    assert ex_file.startswith("examples/") and pd.isna(eff.loc["test_q_toy::test_rep[a]", "examples_file"])
    saved = json.loads((stats_dir / ex_file).read_text())
    assert [r["percentile"] for r in saved["rows"]] == [10, 50, 90] and saved["n_judged"] == 11
    assert ex_file in json.loads((stats_dir / "manifest.json").read_text())["files"]
    assert verify_manifest(stats_dir) == {}

    page = (stats_dir / "report.html").read_text()
    for r in saved["rows"]:                       # every example, both sides, escaped
        assert f"&lt;b&gt;thanks&lt;/b&gt; {r['sample_id']}" in page and f"plain {r['sample_id']}" in page
    assert "<b>thanks</b>" not in page
    assert "Chosen by a fixed rule, not by hand: prompts at the 10th, 50th, 90th percentile" in page
    # grouped under the questions, in plain words, and filterable by question
    assert "Q1: Where is emotion written in the model?" in page and "Q3: Does steering change what" in page
    assert "data-question='Q3'" in page and "id='f-question'" in page

    md = (stats_dir / "report.md").read_text()
    median = saved["rows"][1]
    assert "## Example continuations" in md and f"[{ex_file}]({ex_file})" in md
    assert f"plain {median['sample_id']}" in md and f"rank {median['rank']} of 11" in md
    assert md.index("### Q1: Where is emotion") < md.index("### Q3: Does steering")


def test_spec_parts_shared_by_claims_are_listed_once():
    from emocheck.plugin import html_report as html
    from emocheck.plugin import report as rep
    from tests.test_report import make_result

    code = {f"emocheck/module_{i}.py::function_{i}": f"{i:064x}" for i in range(40)}
    rng = np.random.default_rng(0)
    results = []
    for i in range(3):
        r = make_result(f"h/test_q1.py::test_x[{i}]", "q1_x", 3, rng.normal(1, 1, 10), rng.normal(0, 1, 10))
        r["registration_spec"] = {"spec": {"claim": {"min_d": 0.1 * i}, "code": code, "params": {"i": i}}}
        results.append(r)
    rows, families = rep.finalize(results, "holm")
    page = html.render_html(rows, families, {"profile": "t"}, results=results)
    assert page.count("function_39") == 1                        # the shared code hashes: once in the page
    assert page.count("shared part S1 (40 entries") == 3 and page.count("<details id='spec-S1'>") == 1
    assert "&quot;" not in page.split("<h2>Spec parts shared")[1]   # JSON in <pre> needs no escaped quotes
    for i in range(3):                                           # what differs stays in each claim's own spec
        assert f'"i": {i}' in page
    alone = html.render_html(rows[:1], families, {"profile": "t"}, results=results[:1])
    assert alone.count("function_39") == 1 and "shared part" not in alone   # one claim: nothing to share
