"""report.html: rendered and driven in a real headless browser (Debian's chromium; `.ci/run` installs it).

The page is loaded with filters / a sort in its URL; the DOM dumped after its script ran must show
exactly the claims that match, in the right order, and a screenshot must be written.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from emocheck.plugin import html_report as html
from emocheck.plugin import report as rep
from tests.test_report import make_result

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if CHROMIUM is None and not os.environ.get("EMOCHECK_REQUIRE_BROWSER"):
    pytest.skip("no chromium here (apt-get install -y chromium; .ci/run installs it and requires this test)",
                allow_module_level=True)


def _browser(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "EMOCHECK_REQUIRE_BROWSER is set but chromium is not installed (apt-get install -y chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    rng = np.random.default_rng(1)
    results = []
    for model in ("gemma3-270m", "smollm2-135m"):
        for i, shift in enumerate([1.5, 0.8, 0.0]):
            r = make_result(f"h/test_q1.py::test_sep[{model}-{i}]", "q1", 6, rng.normal(shift, 1, 30),
                            rng.normal(0, 1, 30), min_d=0.3, seed=i,
                            metrics={"fluency_perplexity": 12.5 + i, "random_control_d_mean": 0.01})
            r["model"] = model
            results.append(r)
        r = make_result(f"h/test_q3.py::test_steer[{model}]", "q3", 2, rng.normal(0.9, 1, 20), rng.normal(0, 1, 20),
                        paired=True)
        r["model"] = model
        r["examples"] = {"rule": "prompts at the 10th, 50th, 90th percentile (test)", "column": "politeness",
                         "treated": "gratitude", "control": "random:gratitude", "n_judged": 20,
                         "rows": [{"percentile": p, "rank": k, "sample_id": f"p{k}", "prompt": f"Opening {k}",
                                   "difference": 0.1 * k,
                                   "treated": {"condition": "gratitude", "text": f"Thank you so much {model} {k}",
                                               "score": 0.9, "nll": 2.0, "rep3": 0.0},
                                   "control": {"condition": "random:gratitude", "text": f"The weather {model} {k}",
                                               "score": 0.2, "nll": 2.1, "rep3": 0.0}}
                                  for p, k in ((10, 2), (50, 10), (90, 18))]}
        results.append(r)
    rows, families = rep.finalize(results, "holm")
    statuses = {}
    for j, row in enumerate(rows):
        status = ["pre-registered", "changed after registration", "exploratory"][j % 3]
        row["registration"] = status
        row["registration_changes"] = status + (": claim.min_d 0.5 -> 0.3" if j % 3 == 1 else "")
        statuses[row["claim_id"]] = {"status": status, "changes": [{"field": "claim.min_d", "from": 0.5, "to": 0.3}]
                                     if j % 3 == 1 else [], "spec": {"claim": {"min_d": 0.3}}}
    registration = {"lock": {"path": "preregistration.json", "registered_utc": "2026-01-01T00:00:00Z",
                             "forced": False}, "claims": statuses, "families": {}}
    settings = {"profile": "ci", "correction": "holm", "alpha": 0.05}
    paths = rep.write_statistics(results, rows, families, settings, tmp / "statistics", registration=registration)
    return {"path": paths["html"], "rows": rows, "tmp": tmp}


def _visible(dom: str) -> tuple[int, list[str]]:
    count = int(re.search(r'id="visible-count">(\d+)<', dom).group(1))
    shown = re.findall(r'<tr class="claim"[^>]*data-claim="([^"]+)"(?![^>]*hidden)[^>]*>', dom)
    return count, shown


def test_page_is_self_contained(page):
    text = page["path"].read_text()
    assert not re.search(r'(src|href)=["\']https?://', text)  # nothing to fetch: works offline
    assert text.count("<tr class='claim'") == len(page["rows"]) == 8
    assert "data:image/png;base64," in text  # the forest plots are embedded
    for href in re.findall(r"href='(samples/[^']+)'", text):
        assert (page["path"].parent / href).is_file()  # links to the sample files resolve


@pytest.mark.parametrize("fragment, expected", [
    ("", lambda r: True),
    ("model=smollm2-135m", lambda r: r["model"] == "smollm2-135m"),
    ("model=gemma3-270m&family=q1&verdict=supported",
     lambda r: r["model"] == "gemma3-270m" and r["family"] == "q1" and r["verdict"] == "supported"),
    ("registration=changed after registration", lambda r: r["registration"] == "changed after registration"),
    ("verdict=inconclusive", lambda r: r["verdict"] == "inconclusive"),
])
def test_filters_show_exactly_the_matching_claims(page, tmp_path, fragment, expected):
    res = _browser(tmp_path, page["path"].as_uri() + "#" + fragment.replace(" ", "%20"), "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    count, shown = _visible(res.stdout)
    want = sorted(r["claim_id"] for r in page["rows"] if expected(r))
    assert 0 < len(want) and (len(want) < len(page["rows"]) or not fragment)
    assert count == len(want) and sorted(s.replace("&amp;", "&") for s in shown) == want
    assert f'data-visible="{len(want)}"' in res.stdout  # written by the page's script


def test_sort_by_effect_size_descending(page, tmp_path):
    res = _browser(tmp_path, page["path"].as_uri() + "#sort=d&dir=desc", "--dump-dom")
    _, shown = _visible(res.stdout)
    d = {r["claim_id"]: r["d"] for r in page["rows"]}
    order = [d[s] for s in shown]
    assert order == sorted(order, reverse=True) and len(order) == 8


def test_large_nulls_are_drawn_as_quantiles_not_every_point():
    from emocheck.plugin.html_report import MAX_POINTS, samples_svg

    svg = samples_svg([1.0], [i / 1000 for i in range(2000)], labels=("observed", "null"))
    dots = re.findall(r"M(\d+) (\d+)h0", svg)         # one zero-length round-capped segment per point
    assert len(dots) == 1 + MAX_POINTS
    assert "null (2000)" in svg                        # the count shown is every value
    xs = sorted(float(x) for x, _ in dots[1:])
    assert max(xs) - min(xs) > 250                     # the drawn subset spans the whole range


def test_family_summary_counts_supported_per_model():
    from emocheck.plugin.html_report import _family_summary

    rows = [{"family": "f", "model": "a", "verdict": "supported"}, {"family": "f", "model": "a", "verdict": "not supported"},
            {"family": "f", "model": "b", "verdict": "supported"}, {"family": "g", "model": "b", "verdict": "not supported"}]
    html = _family_summary(rows)
    assert "<tr><td>f</td><td>1 / 2</td><td>1 / 1</td></tr>" in html
    assert "<tr><td>g</td><td>-</td><td>0 / 1</td></tr>" in html


def test_rows_are_coloured_and_counted_by_verdict(page):
    from emocheck.plugin.html_report import _family_summary

    text = page["path"].read_text()
    for verdict in {r["verdict"] for r in page["rows"]}:
        assert f"tr.claim[data-verdict={verdict}]" in text and f"class='v-{verdict}'" in text
    assert "<h1>emocheck report: " + rep.verdict_tally(page["rows"]) + "</h1>" in text
    rows = [{"family": "f", "model": "a", "verdict": "supported"}, {"family": "f", "model": "a", "verdict": "refuted"},
            {"family": "f", "model": "a", "verdict": "inconclusive"}]
    assert "<td>1 / 3 <span class='v-refuted'>(1 refuted)</span></td>" in _family_summary(rows)


def test_screenshot_of_an_opened_claim(page, tmp_path):
    from PIL import Image

    claim = page["rows"][1]["claim_id"]
    shot = tmp_path / "report.png"
    res = _browser(tmp_path, page["path"].as_uri() + "#open=" + claim, f"--screenshot={shot}", "--window-size=1400,1000")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    if os.environ.get("EMOCHECK_KEEP_SCREENSHOT"):  # a path to keep the screenshot at, to look at it
        shutil.copy(shot, os.environ["EMOCHECK_KEEP_SCREENSHOT"])
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (1000, 1400)
    # the opened claim's inline plot draws treated (orange) and control (teal) points: their colours at
    # fill-opacity 0.55 over the detail panel's #fafafa
    def blended(rgb):
        return tuple(0.55 * c + 0.45 * 250 for c in rgb)
    orange = (np.abs(img - blended((0xd9, 0x5f, 0x02))).sum(axis=2) < 25).sum()
    teal = (np.abs(img - blended((0x1b, 0x9e, 0x77))).sum(axis=2) < 25).sum()
    assert orange > 30 and teal > 30
    dom = _browser(tmp_path, page["path"].as_uri() + "#open=" + claim, "--dump-dom").stdout
    assert re.search(r'<tr class="detail" id="d1"(?![^>]*hidden)', dom)


def test_distribution_strips_for_each_evidence_kind():
    tr, co, labels = html._distribution({"kind": "vs_null", "samples": {"observed": 2.5, "null": [0.1, -0.2]}})
    assert tr == [2.5] and co == [0.1, -0.2] and labels[:2] == ("observed", "null draws")
    tr, co, labels = html._distribution({"kind": "directions",
                                         "samples": {"treated": [1.0, 2.0], "control": [[0.1, None], [0.3, 0.4]]}})
    assert tr == [1.0, 2.0] and co == [0.1, 0.3, 0.4] and labels[1] == "controls"
    assert "observed (1)" in html.samples_svg([2.5], [0.1, -0.2], labels=("observed", "null draws"))


def test_an_opened_steering_claim_shows_its_example_continuations(page, tmp_path):
    claim = next(r["claim_id"] for r in page["rows"] if r["family"] == "q3" and r["model"] == "smollm2-135m")
    res = _browser(tmp_path, page["path"].as_uri() + "#open=" + claim, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    opened = re.search(r'<tr class="detail" id="d\d+">', res.stdout)
    assert opened, "the claim's detail row is not open"
    rest = res.stdout[opened.end():]
    pane = rest[:rest.find('<tr class="claim"')]
    assert "Chosen by a fixed rule, not by hand: prompts at the 10th, 50th, 90th percentile (test)" in pane
    for k in (2, 10, 18):     # treated and control of every example, side by side in one row
        assert re.search(rf"Thank you so much smollm2-135m {k}.*?</td>\s*<td>The weather smollm2-135m {k}", pane, re.S)
    assert "gemma3-270m" not in pane


def test_question_filter_and_grouped_summary(page, tmp_path):
    res = _browser(tmp_path, page["path"].as_uri() + "#question=Q3", "--dump-dom")
    count, shown = _visible(res.stdout)
    want = sorted(r["claim_id"] for r in page["rows"] if r["family"] == "q3")
    assert count == len(want) == 2 and sorted(s.replace("&amp;", "&") for s in shown) == want
    text = page["path"].read_text()
    assert text.index("Q1: Where is emotion written in the model?") < text.index("Q3: Does steering change")
