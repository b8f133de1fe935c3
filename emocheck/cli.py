"""The ``emocheck`` command: pre-registration, claims, run comparison, caches and vector export.

    emocheck preregister [PATHS] [--profile ci] [--force]    write preregistration.json, run nothing
    emocheck status      [PATHS] [--profile ci] [--strict]   compare the claims with the lock, run nothing
    emocheck claims      [PATHS] [--profile ci] [-- PYTEST ARGS]   run the claims (pytest hypotheses/ ...)
    emocheck compare     A B [--top N] [--allow-missing] [--max-d-diff X]   verdict and d changes; exit 1 on a change
    emocheck cache       list|size|verify|clear [--profile P] [--model M] [--results DIR] [--model-cache DIR]
    emocheck export      --model M --emotion E --layer L [--format gguf|steering-vectors] --out PATH
    emocheck quickstart  [-- PYTEST ARGS]                    a first verdict: a few Q1 and Q3 claims on SmolLM2

preregister / status / claims are thin layers over ``pytest`` with the plugin's flags
(``--emocheck-preregister``, ``--emocheck-registration-status``), so a study registered with either
gives the same lock. ``status --strict`` exits 1 when any claim is not pre-registered or a family
changed, for a CI gate before a run. Extra arguments after ``--`` go to pytest unchanged (for example
``-k gemma``, or ``--lf`` / ``--sw`` to rerun the claims that failed last time: ``claims`` keeps
pytest's cache; preregister and status never use it, since they must see every claim and status
writes nothing).
"""
from __future__ import annotations

import argparse
import sys

import pytest


class _StatusCollector:
    """Reads the status check's outcome off the plugin state once the session ends."""

    def __init__(self) -> None:
        self.check: dict | None = None

    def pytest_sessionfinish(self, session) -> None:
        from emocheck.plugin.state import STATE_KEY

        state = session.config.stash.get(STATE_KEY, None)
        self.check = getattr(state, "registration_check", None)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", default=["hypotheses"], help="claim files or folders (default: hypotheses)")
    p.add_argument("--profile", default=None, help="emocheck profile (default: the ini's emocheck_profile)")
    p.add_argument("--lock", default=None, metavar="FILE", help="the lock file (default: <rootdir>/preregistration.json)")


def _roots(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=None, metavar="DIR",
                   help="the results root (default: $EMOCHECK_RESULTS_DIR, else ./results)")


PYTEST_COMMANDS = ("preregister", "status", "claims")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emocheck", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preregister", help="write every collected claim's spec hash to the lock; runs no claim")
    _common(p)
    p.add_argument("--force", action="store_true", help="write the lock although results exist (recorded as forced)")
    p = sub.add_parser("status", help="each claim's registration status against the lock; runs no claim")
    _common(p)
    p.add_argument("--strict", action="store_true", help="exit 1 unless every claim is pre-registered")
    p = sub.add_parser("claims", help="run the claims (pytest PATHS --emocheck-profile PROFILE ...); "
                                      "`-- --lf` reruns the claims that failed last time")
    _common(p)

    p = sub.add_parser("compare", help="verdict and effect-size changes between two sessions; exit 1 when a "
                                       "verdict changed")
    p.add_argument("a", help="session A: a session.json, or its statistics or results/<profile> folder")
    p.add_argument("b", help="session B (the same)")
    p.add_argument("--top", type=int, default=10, help="how many of the largest d changes to list (default 10)")
    p.add_argument("--allow-missing", action="store_true",
                   help="a claim only one session has does not fail the comparison")
    p.add_argument("--max-d-diff", type=float, default=None, metavar="X",
                   help="also exit 1 when some |d B - d A| exceeds X")

    p = sub.add_parser("cache", help="list, size, verify or clear what emocheck caches on disk")
    p.add_argument("action", choices=("list", "size", "verify", "clear"))
    p.add_argument("--profile", default=None, help="only this profile's results (the model cache has no profile)")
    p.add_argument("--model", default=None, help="only this model's results and de-quantised copy")
    _roots(p)
    p.add_argument("--model-cache", default=None, metavar="DIR",
                   help="the model cache (default: $EMOCHECK_MODEL_CACHE, else ~/.cache/emocheck/models)")
    p.add_argument("--dry-run", action="store_true", help="clear: say what would be removed, remove nothing")

    p = sub.add_parser("export", help="write an emotion vector as a llama.cpp control vector (GGUF) or a "
                                      "steering-vectors file")
    p.add_argument("--model", required=True, help="registry name, hub id, local folder or .gguf path")
    p.add_argument("--emotion", required=True)
    p.add_argument("--layer", type=int, required=True, help="emocheck's block index L (0-based) of the site")
    p.add_argument("--site", default="hook_resid_post", choices=("hook_resid_post", "hook_resid_pre"))
    p.add_argument("--kind", default="vs_neutral", choices=("vs_neutral", "vs_other", "specific"))
    p.add_argument("--position", default="last", help="position rule of the vectors (default last)")
    p.add_argument("--subspace-k", type=int, default=None, metavar="K",
                   help="export the vector projected onto the emotion's top-K subspace (rescaled to its norm)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the vector (default 1: emocheck's alpha = 1)")
    p.add_argument("--profile", default=None, help="profile whose cached vectors to read (default $EMOCHECK_PROFILE or ci)")
    p.add_argument("--format", dest="fmt", default="gguf", choices=("gguf", "steering-vectors"))
    p.add_argument("--out", required=True, metavar="PATH")
    _roots(p)

    p = sub.add_parser("quickstart", help="run a few real Q1 and Q3 claims on SmolLM2 (profile quickstart, about "
                       "two minutes on 2 cores) and say where the report is and how to go on")
    return ap


def pytest_args(ns: argparse.Namespace, extra: list[str]) -> list[str]:
    # preregister and status must see every claim (pytest's --lf skips whole files at collection) and
    # status writes nothing (the cache plugin writes .pytest_cache): only `claims` keeps pytest's cache,
    # so --lf / --sw / --ff work through it.
    args = [*ns.paths] + (["-p", "no:cacheprovider"] if ns.command != "claims" else [])
    if ns.profile:
        args += ["--emocheck-profile", ns.profile]
    if ns.lock:
        args += ["--emocheck-preregistration", ns.lock]
    if ns.command == "preregister":
        args.append("--emocheck-preregister")
        if ns.force:
            args.append("--emocheck-preregister-force")
    elif ns.command == "status":
        args.append("--emocheck-registration-status")
    return args + extra


CACHE_FLAGS = ("--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--sw", "--stepwise",
               "--sw-skip", "--stepwise-skip", "--sw-reset", "--stepwise-reset", "--lfnf", "--last-failed-no-failures",
               "--cache-clear", "--cache-show")


def cache_flag_error(command: str, extra: list[str]) -> str | None:
    used = [a for a in extra if a.split("=", 1)[0] in CACHE_FLAGS]
    if command == "claims" or not used:
        return None
    return (f"emocheck {command} must see every claim, so it does not use pytest's cache: drop {' '.join(used)} "
            "(use them with `emocheck claims -- --lf`)")


def strict_failures(check: dict | None) -> list[str]:
    """Why ``status --strict`` fails (empty: every claim pre-registered, every family unchanged)."""
    if not check:
        return ["the status check did not run"]
    if check.get("error"):
        return [check["error"]]
    if not check.get("lock_found"):
        return ["no lock for this profile"]
    out = [f"{cid}: {st['status']}" for cid, st in sorted(check["statuses"].items()) if st["status"] != "pre-registered"]
    out += [f"family {name}: membership changed" for name, fam in sorted(check["families"].items())
            if fam.get("membership_changed")]
    return out


def _fail(message: str) -> int:
    print(f"emocheck: {message}", file=sys.stderr)
    return 2


def run_compare(ns: argparse.Namespace) -> int:
    from emocheck.plugin.compare import compare_sessions, exit_status, format_comparison

    result = compare_sessions(ns.a, ns.b)
    print(format_comparison(result, top=ns.top))
    status = exit_status(result, allow_missing=ns.allow_missing, max_d_diff=ns.max_d_diff)
    if status:
        print(f"emocheck compare: the sessions differ ({len(result.verdict_changes)} verdict change(s), "
              f"{len(result.only_a) + len(result.only_b)} claim(s) on one side only)", file=sys.stderr)
    return status


def run_cache(ns: argparse.Namespace) -> int:
    from tabulate import tabulate

    from emocheck import caches

    entries = caches.list_entries(results=ns.results, model_cache=ns.model_cache, profile=ns.profile, model=ns.model)
    where = (f"results {caches.results_root(ns.results)}"
             + ("" if ns.profile else f", model cache {caches.model_cache_root(ns.model_cache)}"))
    if ns.action in ("list", "size"):
        rows = caches.summarise(entries)
        total = sum(r["bytes"] for r in rows)
        if ns.action == "list":
            table = [(r["profile"], r["kind"], r["model"], r["files"], caches.human_bytes(r["bytes"]), r["root"])
                     for r in rows]
            print(tabulate(table, headers=["profile", "kind", "model", "files", "size", "root"]) if table
                  else f"nothing cached ({where})")
        else:
            by_root: dict[tuple, int] = {}
            for r in rows:
                key = (r["root"], r["profile"])
                by_root[key] = by_root.get(key, 0) + r["bytes"]
            print(tabulate([(root, prof, caches.human_bytes(b)) for (root, prof), b in sorted(by_root.items())],
                           headers=["root", "profile", "size"]) if by_root else f"nothing cached ({where})")
        print(f"total {caches.human_bytes(total)} in {len(entries)} entries ({where})")
        return 0
    if ns.action == "verify":
        report = caches.verify(entries)
        for problem in report.problems:
            print(f"DAMAGED {problem.path}: {problem.reason}")
        print(f"{report.checked} checksummed files checked, {len(report.problems)} problem(s); "
              f"{report.unchecked} files carry no checksum (figures, summaries) ({where})")
        return 0 if report.ok else 1
    if ns.profile is None and ns.model is None:
        return _fail("cache clear needs --profile P and/or --model M (nothing is cleared wholesale)")
    report = caches.clear(entries, dry_run=ns.dry_run)
    verb = "would remove" if ns.dry_run else "removed"
    for p in report.removed if ns.dry_run else []:
        print(f"  {p}")
    for problem in report.refused:
        print(f"REFUSED {problem.path}: {problem.reason}", file=sys.stderr)
    kept = caches.foreign_files(caches.results_root(ns.results), ns.profile) if ns.model is None else []
    print(f"{verb} {len(report.removed)} paths ({caches.human_bytes(report.bytes)})"
          + (f"; left {len(kept)} file(s) emocheck did not write" if kept else ""))
    return 1 if report.refused else 0


def run_export(ns: argparse.Namespace) -> int:
    import os

    from emocheck import export
    from emocheck.dataset import emotions_of
    from emocheck.errors import ConfigError
    from emocheck.models.architectures import check_layer
    from emocheck.models.registry import model_config, model_n_layers
    from emocheck.profiles import get_profile
    from emocheck.representations.build import build_representations, prompts_for_profile

    if ns.results:
        os.environ["EMOCHECK_RESULTS_DIR"] = str(ns.results)
    # The layer convention is checked before any model is loaded or vector built.
    index = (export.llamacpp_layer(ns.layer, ns.site) if ns.fmt == "gguf"
             else export.steering_vectors_layer(ns.layer, ns.site))
    profile = get_profile(ns.profile)
    # An emotion the dataset lacks or a layer the model lacks is refused before anything is extracted.
    emotions = emotions_of(prompts_for_profile(profile))
    if ns.emotion not in emotions:
        raise ConfigError(f"unknown emotion {ns.emotion!r}; the profile's dataset has {', '.join(emotions)}")
    config = model_config(ns.model)
    check_layer(ns.layer, model_n_layers(ns.model))
    reps = build_representations(ns.model, profile, progress=False)
    path = export.export_vector(reps.vectors, ns.emotion, ns.layer, ns.out, fmt=ns.fmt, model_type=config.model_type,
                                kind=ns.kind, site=ns.site, position=ns.position, subspaces=reps.subspaces,
                                subspace_k=ns.subspace_k, scale=ns.scale)
    target = "llama.cpp direction" if ns.fmt == "gguf" else "steering-vectors decoder block"
    print(f"wrote {path}: {ns.emotion} {ns.kind} vector of {reps.model} at blocks.{ns.layer}.{ns.site} "
          f"= {target} {index} (profile {profile.name})")
    print(export.describe(path))
    return 0


class _SessionCollector:
    """Reads the finished session's claims and report paths off the plugin state."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.paths: dict = {}

    def pytest_sessionfinish(self, session) -> None:
        from emocheck.plugin.state import STATE_KEY

        state = session.config.stash.get(STATE_KEY, None)
        self.rows = list(getattr(state, "rows", None) or [])
        self.paths = dict(getattr(state, "paths", None) or {})


def quickstart_args(extra: list[str]) -> list[str]:
    from emocheck.profiles import QUICKSTART_CLAIMS

    return [*QUICKSTART_CLAIMS, "--emocheck-profile", "quickstart", "-p", "no:cacheprovider", *extra]


def quickstart(extra: list[str]) -> int:
    """Run the quickstart claims, then print the verdict count, the report's path and the next steps.
    Exit 0 when every claim was judged (supported or not: both are findings), 1 when a claim could not be
    judged, pytest's status for anything else (interrupted, usage error, nothing collected)."""
    import time
    from pathlib import Path

    missing = [c.split("::")[0] for c in quickstart_args([]) if "::" in c and not Path(c.split("::")[0]).is_file()]
    if missing:
        print(f"emocheck quickstart: {missing[0]} not found; run it from the root of an emocheck checkout "
              "(the folder with hypotheses/ and pytest.ini)", file=sys.stderr)
        return 4
    collector = _SessionCollector()
    t0 = time.perf_counter()
    ret = int(pytest.main(quickstart_args(extra), plugins=[collector]))
    took = time.perf_counter() - t0
    if ret not in (0, 1) or not collector.paths:
        return ret if ret else 1
    rows = collector.rows
    judged = [r for r in rows if r.get("status") == "ok"]
    from emocheck.plugin.tally import verdict_tally

    html, md = collector.paths.get("html"), collector.paths.get("report")
    print(f"\nemocheck quickstart: {verdict_tally(rows)}, {len(rows) - len(judged)} not judged, "
          f"in {took // 60:.0f} min {took % 60:.0f} s (profile quickstart, SmolLM2-135M).")
    print(f"  report:  {html}\n           open it in a browser; click a claim for its numbers and, for the "
          "steering claims, example continuations")
    print(f"  summary: {md}")
    print("Next steps:\n"
          "  emocheck claims --profile ci     every claim on both embedded models (Gemma 3 270M, SmolLM2-135M), "
          "about 14 minutes on 2 cores\n"
          "  emocheck claims --profile full   the full-size study (about 200 prompts per condition), hours on a CPU\n"
          "  docs/quickstart.md and docs/report.md say how to read what you just ran")
    return 0 if len(judged) == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    from emocheck.errors import EmocheckError

    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ns = _parser().parse_args(argv)
    if ns.command == "quickstart":
        return quickstart(extra)
    if ns.command not in PYTEST_COMMANDS:
        if extra:
            return _fail(f"emocheck {ns.command} takes no pytest arguments after --")
        handler = {"compare": run_compare, "cache": run_cache, "export": run_export}[ns.command]
        try:
            return handler(ns)
        except EmocheckError as exc:
            return _fail(str(exc))
    problem = cache_flag_error(ns.command, extra)
    if problem:
        return _fail(problem)
    collector = _StatusCollector()
    ret = int(pytest.main(pytest_args(ns, extra), plugins=[collector]))
    if ns.command == "status" and ns.strict and ret == 0:
        failures = strict_failures(collector.check)
        if failures:
            print(f"emocheck status --strict: {len(failures)} problem(s); first: {failures[0]}", file=sys.stderr)
            return 1
    return ret


if __name__ == "__main__":
    raise SystemExit(main())
