"""The ``emocheck`` command: the pre-registration steps without remembering pytest flags.

    emocheck preregister [PATHS] [--profile ci] [--force]    write preregistration.json, run nothing
    emocheck status      [PATHS] [--profile ci] [--strict]   compare the claims with the lock, run nothing
    emocheck claims      [PATHS] [--profile ci] [-- PYTEST ARGS]   run the claims (pytest hypotheses/ ...)
    emocheck quickstart  [-- PYTEST ARGS]                    a first verdict: a few Q1 and Q3 claims on SmolLM2

Each is a thin layer over ``pytest`` with the plugin's flags (``--emocheck-preregister``,
``--emocheck-registration-status``), so a study registered with either gives the same lock. ``status
--strict`` exits 1 when any claim is not pre-registered or a family changed, for a CI gate before a run.
Extra arguments after ``--`` go to pytest unchanged (for example ``-k gemma``).
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


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emocheck", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preregister", help="write every collected claim's spec hash to the lock; runs no claim")
    _common(p)
    p.add_argument("--force", action="store_true", help="write the lock although results exist (recorded as forced)")
    p = sub.add_parser("status", help="each claim's registration status against the lock; runs no claim")
    _common(p)
    p.add_argument("--strict", action="store_true", help="exit 1 unless every claim is pre-registered")
    p = sub.add_parser("claims", help="run the claims (pytest PATHS --emocheck-profile PROFILE ...)")
    _common(p)
    p = sub.add_parser("quickstart", help="run a few real Q1 and Q3 claims on SmolLM2 (profile quickstart, about "
                       "two minutes on 2 cores) and say where the report is and how to go on")
    return ap


def pytest_args(ns: argparse.Namespace, extra: list[str]) -> list[str]:
    args = [*ns.paths, "-p", "no:cacheprovider"]
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
    supported = sum(r.get("verdict") == "supported" for r in rows)
    html, md = collector.paths.get("html"), collector.paths.get("report")
    print(f"\nemocheck quickstart: {supported} of {len(rows)} claims supported, {len(rows) - len(judged)} not judged, "
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
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ns = _parser().parse_args(argv)
    if ns.command == "quickstart":
        return quickstart(extra)
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
