"""``session.json``: what produced the numbers of a results folder, so any verdict can be traced and recomputed.

It records the git commit and dirty flags (of the hypotheses, the fixtures, the data, the library),
package versions, the models' identities (weights hash, without loading them), the data files'
hashes, the command line, the profile, the seeds, the xdist worker count, the wall time per phase
(the session's own, plus ``emocheck.timing.summary`` when that module exists), the registration
lock's state, and, per claim, every input of its verdict: the samples file, the settings of the
test, the family and its declared size, the correction and the result. :func:`recompute_verdict`
turns those records back into the verdict with the statistics functions alone.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

PACKAGES = ("emocheck", "torch", "transformers", "nnsight", "numpy", "scipy", "pandas", "statsmodels",
            "safetensors", "matplotlib", "pytest", "pytest-xdist", "gguf", "tabulate", "filelock")
TRACKED = ("hypotheses", "fixtures", "data", "emocheck", "conftest.py", "pytest.ini", "pyproject.toml")

__all__ = ["git_state", "package_versions", "model_identities", "phase_timing", "session_record",
           "recompute_verdict"]


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: Path, paths: Iterable[str] = TRACKED) -> dict:
    """Commit, branch and, per tracked path, whether the working tree differs from it (untracked too)."""
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "note": f"{root} is not a git checkout (or git is missing)"}
    dirty = {}
    for path in paths:
        if (root / path).exists():
            status = _git(root, "status", "--porcelain", "--", path)
            dirty[path] = bool(status and status.strip())
    return {
        "commit": commit.strip(),
        "branch": (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
        "dirty": any(dirty.values()),
        "worktree_dirty": bool((_git(root, "status", "--porcelain") or "").strip()),
        "hypotheses_dirty": dirty.get("hypotheses"),
        "dirty_paths": dirty,
    }


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_identities(models: Iterable[str], identity: Callable[[str], dict] | None = None) -> dict[str, dict]:
    """{model: identity} (source, GGUF sha256 / hub revision, dtype); an error string where it cannot be had."""
    if identity is None:
        from emocheck.models.registry import model_identity as identity
    out = {}
    for name in sorted(set(models)):
        try:
            out[name] = identity(name)
        except Exception as exc:  # noqa: BLE001 - provenance never changes a verdict; say what is missing
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def phase_timing(results_root: Path, profile: str, own: dict[str, float]) -> dict:
    """The session's own phase wall times plus ``emocheck.timing.summary`` when it is importable."""
    out: dict[str, Any] = {"session_wall_s": {k: round(float(v), 3) for k, v in own.items()}}
    from emocheck import timing

    try:
        out["phases"] = timing.summary(results_root, profile)
    except Exception as exc:  # noqa: BLE001
        out["phases"] = None
        out["phases_note"] = f"emocheck.timing.summary failed: {type(exc).__name__}: {exc}"
    return out


CLAIM_FIELDS = ("claim_id", "family", "model", "statement", "status", "kind", "samples_file", "paired", "alternative",
                "min_d", "alpha", "ci_method", "seed", "family_declared", "family_run", "correction",
                "p_value", "p_min_effect", "p_refute", "p_adjusted", "p_min_effect_adjusted", "p_refute_adjusted",
                "d", "verdict", "verdict_uncorrected", "n_decide_at_observed", "n_refute_if_d0",
                "registration", "spec_hash")


def _claim_record(row: dict, result: dict | None) -> dict:
    rec = {k: row.get(k) for k in CLAIM_FIELDS}
    settings = (result or {}).get("settings") or {}
    rec["n_resamples"] = settings.get("n_resamples")
    rec["params"] = (result or {}).get("params")
    return rec


def session_record(*, settings: dict, rows: list[dict], results: list[dict], families: dict,
                   root: Path, data_root: Path, command: list[str], workers: int, own_timing: dict[str, float],
                   registration: dict | None = None, models: Iterable[str] | None = None,
                   identity: Callable[[str], dict] | None = None) -> dict:
    """Everything session.json holds (plain data)."""
    from emocheck.plugin.spec_hash import data_files, data_hashes

    by_id = {r["claim_id"]: r for r in results}
    used_models = sorted({r.get("model") for r in rows if r.get("model")} | set(models or []))
    return {
        "format": "emocheck-session",
        "version": 1,
        "settings": settings,
        "command": list(command),
        "python_executable": sys.executable,
        "workers": int(workers),
        "git": git_state(root),
        "packages": package_versions(),
        "models": model_identities(used_models, identity),
        "data": {"root": str(data_root), "sha256": data_hashes(data_root, data_files(data_root))},
        "timing": phase_timing(Path(settings.get("results_dir", ".")), str(settings.get("profile")), own_timing),
        "registration": registration or {"lock": None},
        "families": families,
        "claims": [_claim_record(r, by_id.get(r["claim_id"])) for r in rows],
        "recompute": ("per claim: stats.compare(treated, control) from samples_file with paired, alternative, "
                      "min_d, alpha, ci_method, n_resamples, seed; correct p_value, p_min_effect and p_refute "
                      "over the family's run members with stats.adjust_pvalues(method=correction, "
                      "n_tests=family_declared); verdict = stats.verdict(...) (supported / refuted / "
                      "inconclusive) -- see emocheck.plugin.provenance.recompute_verdict"),
    }


def recompute_verdict(session: dict, statistics_dir: Path, claim_id: str) -> dict:
    """Recompute one claim's corrected p-values and verdict (supported / refuted / inconclusive) from
    session.json and the samples files."""
    import pandas as pd

    from emocheck.stats import adjust_pvalues, compare, compare_directions, compare_to_null, verdict

    claims = {c["claim_id"]: c for c in session["claims"]}
    target = claims[claim_id]
    members = sorted(c for c, rec in claims.items()
                     if rec["family"] == target["family"] and rec["status"] == "ok" and rec["samples_file"])
    comps = {}
    for cid in members:
        rec = claims[cid]
        df = pd.read_csv(Path(statistics_dir) / rec["samples_file"])
        common = dict(alternative=rec["alternative"], min_d=float(rec["min_d"]), alpha=float(rec["alpha"]))
        kind = rec.get("kind") or "samples"
        if kind == "vs_null":
            comps[cid] = compare_to_null(float(df.loc[df.role == "observed", "value"].iloc[0]),
                                         df.loc[df.role == "null_draw", "value"].to_numpy(), **common)
        elif kind == "directions":
            controls = df[[c for c in df.columns if c.startswith("control_")]].to_numpy(dtype=float)
            comps[cid] = compare_directions(df["treated"].to_numpy(dtype=float), controls, **common)
        else:
            treated, control = df["treated"].dropna().to_numpy(), df["control"].dropna().to_numpy()
            comps[cid] = compare(treated, control, paired=bool(rec["paired"]), ci_method=rec["ci_method"],
                                 n_resamples=int(rec["n_resamples"]), seed=int(rec["seed"]), **common)
    n = int(target["family_declared"])
    p = adjust_pvalues([comps[c].p_value for c in members], target["correction"], n_tests=n)
    pm = adjust_pvalues([comps[c].p_min_effect for c in members], target["correction"], n_tests=n)
    pr = adjust_pvalues([comps[c].p_refute for c in members], target["correction"], n_tests=n)
    i = members.index(claim_id)
    comp = comps[claim_id]
    return {"d": comp.d, "p_value": comp.p_value, "p_adjusted": float(p[i]), "p_min_effect_adjusted": float(pm[i]),
            "p_refute_adjusted": float(pr[i]), "verdict": verdict(comp, float(p[i]), float(pm[i]), float(pr[i]))}
