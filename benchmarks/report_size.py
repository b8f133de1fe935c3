"""How big report.html is, what makes it big, and the same session rendered by another version of the code.

    python benchmarks/report_size.py results/ci/statistics [--lock preregistration.json] [--baseline-rev REV]
    python benchmarks/report_size.py --synthetic-from-lock preregistration.json [--profile ci]

1. Breaks the folder's report.html down by part: embedded PNG forest plots, the per-claim distribution
   strips (inline SVG), the per-claim spec blocks, the example continuations, everything else.
2. Rebuilds the session's inputs from the folder (effect_sizes.csv rows, samples/*.csv, examples/*.json;
   the claims' specs from a pre-registration lock when given, since only a lock keeps them on disk) and
   renders the page twice in this process: with the html_report module of ``--baseline-rev`` (default
   HEAD~, any git revision; loaded from ``git show``) and with the current one. Prints both sizes, their
   ratio, and the breakdown of each, so a change is measured on the same inputs.
3. ``--synthetic-from-lock``: without a session at that scale, every claim of a profile's lock (its real
   claim ids, families and specs) gets synthetic samples of 200 treated and 200 control values (more
   than the 150 a strip draws, so every strip is full: the per-claim upper bound) and the forest plots
   are drawn from them; then step 2's comparison.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTS = {
    "forest PNGs (data URIs)": r"data:image/png;base64,[A-Za-z0-9+/=]+",
    "distribution strips (SVG)": r"<svg class='dist'.*?</svg>",
    "spec blocks": r"<details><summary>spec \(what the hash covers\)</summary>.*?</details>",
    "example continuations": r"<div class='examples'>.*?</table></div>",
    "shared spec parts": r"<h2>Spec parts shared by several claims</h2>.*?(?=<script>)",
}


def breakdown(text: str) -> dict[str, int]:
    out, rest = {}, text
    for name, pattern in PARTS.items():
        found = re.findall(pattern, rest, flags=re.S)
        out[name] = sum(len(f.encode()) for f in found)
        rest = re.sub(pattern, "", rest, flags=re.S)
    out["everything else"] = len(rest.encode())
    return out


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rebuild(stats: Path, lock: Path | None):
    """(rows, families, settings, results, registration) from a statistics folder (and a lock)."""
    import pandas as pd

    eff = pd.read_csv(stats / "effect_sizes.csv")
    rows = [{k: _clean(v) for k, v in r.items()} for r in eff.to_dict(orient="records")]
    for r in rows:
        for key in ("samples_file", "examples_file", "error", "registration", "registration_changes"):
            r[key] = r.get(key) or ""
        r["paired"] = bool(r.get("paired"))
    session = json.loads((stats / "session.json").read_text()) if (stats / "session.json").is_file() else {}
    families = session.get("families") or {}
    settings = session.get("settings") or {"profile": "?"}
    specs = {}
    if lock is not None:
        data = json.loads(lock.read_text())
        for entry in (data.get("profiles") or {}).values():
            for cid, rec in (entry.get("claims") or {}).items():
                specs[cid] = rec.get("spec")
    results = []
    for r in rows:
        res = {"claim_id": r["claim_id"], "kind": r.get("kind") or "samples", "registration_spec": {"spec": specs.get(r["claim_id"])}}
        if r["samples_file"] and (stats / r["samples_file"]).is_file():
            df = pd.read_csv(stats / r["samples_file"])
            if res["kind"] == "vs_null":
                res["samples"] = {"observed": float(df.loc[df.role == "observed", "value"].iloc[0]),
                                  "null": df.loc[df.role == "null_draw", "value"].tolist()}
            elif res["kind"] == "directions":
                cols = [c for c in df.columns if c.startswith("control_")]
                res["samples"] = {"treated": df["treated"].tolist(),
                                  "control": [[None if math.isnan(v) else v for v in row] for row in df[cols].to_numpy().tolist()]}
            else:
                res["samples"] = {"treated": df["treated"].dropna().tolist(), "control": df["control"].dropna().tolist()}
        if r["examples_file"] and (stats / r["examples_file"]).is_file():
            res["examples"] = json.loads((stats / r["examples_file"]).read_text())
        results.append(res)
    return rows, families, settings, results, {"claims": {}, "lock": None}


def synthetic(lock: Path, profile: str, out: Path):
    """(rows, families, settings, results, registration, figures) for every claim in the lock."""
    import numpy as np

    from emocheck.plugin import report as rep
    from emocheck.plugin.figures import family_forest_plots
    from emocheck.stats import compare

    entry = json.loads(lock.read_text())["profiles"][profile]
    declared = {fam: len(members) for fam, members in (entry.get("families") or {}).items()}
    results = []
    for i, (cid, rec) in enumerate(sorted(entry["claims"].items())):
        spec = rec["spec"]
        claim = spec.get("claim") or {}
        rng = np.random.default_rng(i)
        t, c = rng.normal(0.4, 1, 200), rng.normal(0, 1, 200)
        model = str((spec.get("params") or {}).get("model_name", ""))
        results.append({"claim_id": cid, "short_id": cid.split("/")[-1], "module": cid.split("::")[0],
                        "family": claim.get("family", "f"), "family_size": declared.get(claim.get("family"), 1),
                        "statement": claim.get("statement", cid), "model": model, "params": spec.get("params") or {},
                        "settings": {"paired": False, "alternative": "greater", "min_d": claim.get("min_d", 0.0),
                                     "alpha": 0.05, "ci_method": "analytic", "n_resamples": 200, "seed": i},
                        "status": "ok", "error": None, "kind": "samples",
                        "comparison": compare(t, c, min_d=claim.get("min_d", 0.0)).to_dict(),
                        "metrics": {"auc": 0.6, "fluency_nll_diff": 0.1, "random_control_mean": 0.0},
                        "samples": {"treated": t.tolist(), "control": c.tolist(), "sample_ids": None},
                        "registration_spec": {"spec": spec}})
    rows, families = rep.finalize(results, "holm")
    figures = family_forest_plots(rows, families, out)
    return rows, families, {"profile": profile}, results, {"claims": {}, "lock": None}, figures


def load_html_module(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:emocheck/plugin/html_report.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "html_report_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("html_report_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("statistics", type=Path, nargs="?")
    ap.add_argument("--synthetic-from-lock", type=Path, default=None, help="render every claim of this lock, synthetic samples")
    ap.add_argument("--profile", default="ci", help="the lock's profile for --synthetic-from-lock")
    ap.add_argument("--lock", type=Path, default=None, help="pre-registration lock with the claims' specs")
    ap.add_argument("--baseline-rev", default="HEAD~", help="git revision whose html_report is the baseline")
    args = ap.parse_args(argv)
    stats = args.statistics
    page = stats / "report.html" if stats else Path("/nonexistent")
    if page.is_file():
        text = page.read_text(encoding="utf-8")
        print(f"{page}: {_mb(len(text.encode()))}, {text.count(chr(60) + 'tr class=' + chr(39) + 'claim')} claims")
        for name, n in breakdown(text).items():
            print(f"  {name:28s} {_mb(n)}")
    from emocheck.plugin import html_report as current
    from emocheck.plugin.figures import figure_name

    if args.synthetic_from_lock:
        rows, families, settings, results, registration, figures = synthetic(
            args.synthetic_from_lock, args.profile, Path(tempfile.mkdtemp()))
    else:
        rows, families, settings, results, registration = rebuild(stats, args.lock)
        figures = {r["family"]: stats / figure_name(r["family"]) for r in rows
                   if (stats / figure_name(r["family"])).is_file()}
    baseline = load_html_module(args.baseline_rev)
    sizes = {}
    for name, module in ((f"baseline ({args.baseline_rev})", baseline), ("current", current)):
        t0 = time.perf_counter()
        text = module.render_html(rows, families, settings, results=results, registration=registration, figures=figures)
        took = time.perf_counter() - t0
        sizes[name] = len(text.encode())
        print(f"rendered by {name}: {_mb(sizes[name])} in {took:.1f} s")
        for part, n in breakdown(text).items():
            print(f"  {part:28s} {_mb(n)}")
    base, cur = sizes.values()
    lock = args.lock or args.synthetic_from_lock
    print(f"current / baseline = {cur / base:.3f} ({len(rows)} claims, {len(figures)} forest plots, "
          f"specs {'from ' + str(lock) if lock else 'not available (no --lock)'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
