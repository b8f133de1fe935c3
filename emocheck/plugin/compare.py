"""Verdicts against a baseline, and the exit-status policy (no pytest here: usable from a notebook or a CLI).

* :func:`compare_sessions` compares the claims of two runs (two ``session.json`` files, or a run against
  the pre-registration lock's expected verdicts): which verdicts changed, which claims only one side has,
  the largest |d| difference. ``benchmarks/compare_sessions.py`` and the baseline of a pytest run
  (``--emocheck-baseline``) both use it.
* :func:`regression` says whether one change is a failure against the baseline: a supported claim that
  is no longer supported, a refuted claim that is now supported, or a pre-registered claim that is newly
  refuted. Other changes (inconclusive -> supported, refuted -> inconclusive, ...) are listed, never failed.
* :func:`claim_fails` is the policy of ``--emocheck-fail-on``: which final verdicts make the run fail.

Baseline files:

* ``results/<profile>/statistics/session.json`` of an earlier run (``format: emocheck-session``; the
  verdict of every claim is in ``claims``). Records written before the three verdicts say "not supported",
  which matches both "refuted" and "inconclusive" (no change is reported for those).
* the pre-registration lock (``format: emocheck-preregistration``): the claims of the profile's entry that
  carry an ``expected_verdict`` (``supported``, ``refuted`` or ``inconclusive``; add it to the lock by hand
  after registering) are the baseline; claims without one are not compared.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from emocheck.errors import ConfigError

SESSION_FILE = "session.json"

VERDICTS = ("supported", "refuted", "inconclusive")
FAIL_ON = ("refuted", "inconclusive", "changed")
LEGACY_NOT_SUPPORTED = "not supported"
PRE_REGISTERED = "pre-registered"

__all__ = ["FAIL_ON", "SessionComparison", "VerdictChange", "claim_fails", "compare_sessions",
           "compare_verdicts", "exit_status", "format_comparison", "load_verdicts", "regression", "session_path"]


class BaselineError(ConfigError):
    """The baseline file cannot be used; the message says what to do."""


@dataclass(frozen=True)
class VerdictChange:
    """One claim whose verdict differs between the baseline (``before``, None: not in it) and now
    (``after``, None: not run now). ``fails``: a regression (:func:`regression`), ``why`` says which."""

    claim_id: str
    before: str | None
    after: str | None
    fails: bool
    why: str
    registration: str | None = None


@dataclass
class SessionComparison:
    """What :func:`compare_sessions` / :func:`compare_verdicts` found.

    ``changes``: every claim whose verdict differs (regressions first, then by claim id), including claims
    only one side has; ``common``: claims on both sides; ``only_a`` / ``only_b``: claim ids on one side
    only; ``max_abs_d_diff`` / ``max_claim``: the largest |d| difference among common claims (inf when d is
    finite on one side only). ``changed``: any verdict differs or a claim is on one side only;
    ``regressed``: some change fails against the baseline (what ``--emocheck-fail-on changed`` fails on).
    """

    common: int
    changes: list[VerdictChange] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    max_abs_d_diff: float = 0.0
    max_claim: str | None = None
    #: (claim, d before, d after, |difference|) of the common claims whose d differs, largest first
    d_changes: list[tuple[str, float | None, float | None, float]] = field(default_factory=list)
    a: dict[str, dict] = field(default_factory=dict, repr=False)
    b: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def verdict_changes(self) -> list[tuple[str, str | None, str | None]]:
        return self.flips

    @property
    def flips(self) -> list[tuple[str, str | None, str | None]]:
        """(claim, before, after) of the claims on both sides whose verdict differs."""
        return [(c.claim_id, c.before, c.after) for c in self.changes if c.before is not None and c.after is not None]

    @property
    def regressions(self) -> list[VerdictChange]:
        return [c for c in self.changes if c.fails]

    @property
    def changed(self) -> bool:
        return bool(self.flips or self.only_a or self.only_b)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def summary(self) -> str:
        d = f"{self.max_abs_d_diff:.2e}" + (f" ({self.max_claim})" if self.max_claim else "")
        fails = f"; {len(self.regressions)} fail against the baseline" if self.regressions else ""
        return f"{self.common} claims in both, {len(self.flips)} verdicts differ, largest |d| difference {d}{fails}"

    def rows(self) -> list[list[str]]:
        return [[c.claim_id, c.before or "(not in baseline)", c.after or "(not run)",
                 "FAILS" if c.fails else "listed", c.why] for c in self.changes]

    def table(self, tablefmt: str = "simple") -> str:
        """The changes as a table (regressions first): claim, before, after, fails, why."""
        from tabulate import tabulate

        if not self.changes:
            return "no verdict changed"
        return tabulate(self.rows(), headers=["claim", "before", "after", "", "why"], tablefmt=tablefmt,
                        disable_numparse=True)

    def markdown(self, title: str = "Verdict changes against the baseline") -> list[str]:
        """Lines of a report section (regressions first)."""
        lines = [f"## {title}", "", self.summary() + ".", ""]
        if self.changes:
            lines += [self.table(tablefmt="github"), ""]
        return lines

    def to_dict(self) -> dict:
        return {"common": self.common, "changed": self.changed, "regressed": self.regressed,
                "changes": [c.__dict__ for c in self.changes], "only_a": self.only_a, "only_b": self.only_b,
                "max_abs_d_diff": self.max_abs_d_diff, "max_claim": self.max_claim}


def _same(before: str | None, after: str | None) -> bool:
    if before == after:
        return True
    # A record from before the three verdicts: "not supported" is either of the two that are not support.
    return before == LEGACY_NOT_SUPPORTED and after in ("refuted", "inconclusive") or \
        after == LEGACY_NOT_SUPPORTED and before in ("refuted", "inconclusive")


def regression(before: str | None, after: str | None, registration: str | None = None) -> tuple[bool, str]:
    """(fails, why) of one claim's verdict ``before`` (baseline; None: not in it) -> ``after`` (now; None:
    not run now). Fails: supported -> anything else (inconclusive, refuted, error, ...), refuted -> supported,
    and a pre-registered claim (``registration == 'pre-registered'``) refuted now and not before. A claim
    not run now is listed but never fails (a ``-k`` selection runs a subset)."""
    if _same(before, after):
        return False, "unchanged"
    if after is None:
        return False, "not run in this session"
    if before == "supported":
        return True, f"was supported, now {after}"
    if before == "refuted" and after == "supported":
        return True, "was refuted, now supported"
    if after == "refuted" and registration == PRE_REGISTERED:
        return True, "a pre-registered claim is newly refuted"
    if before is None:
        return False, "not in the baseline"
    return False, f"{before} -> {after}"


def claim_fails(verdict: str, policy: str, *, before: str | None = None, registration: str | None = None) -> bool:
    """Whether a claim with this final verdict fails its test under ``--emocheck-fail-on policy``:
    'refuted' (the default without a baseline): refuted claims fail; 'inconclusive': everything that is not
    supported fails (the strict rule); 'changed': only regressions against the baseline verdict ``before``
    fail (:func:`regression`). Statuses that are not verdicts (error, failed, skipped) are pytest's own."""
    if policy not in FAIL_ON:
        raise ValueError(f"fail-on policy must be one of {FAIL_ON}, got {policy!r}")
    if verdict not in VERDICTS:
        return verdict in ("error", "failed")
    if policy == "refuted":
        return verdict == "refuted"
    if policy == "inconclusive":
        return verdict != "supported"
    return regression(before, verdict, registration)[0]


def _finite(d):
    try:
        d = float(d)
    except (TypeError, ValueError):
        return None
    return d if math.isfinite(d) else None


def session_path(path) -> Path:
    """The file a user pointed at: a session.json (or lock) itself, or the session.json inside a
    results/<profile> or statistics folder."""
    p = Path(path)
    if p.is_dir():
        for candidate in (p / SESSION_FILE, p / "statistics" / SESSION_FILE):
            if candidate.is_file():
                return candidate
        raise BaselineError(f"{p} holds no {SESSION_FILE} (looked in {p} and {p / 'statistics'}); pass a "
                            "session.json or the results/<profile> folder of a finished claims session")
    return p


def _read_session_bytes(path: Path) -> bytes:
    """The file's bytes, checked against the statistics manifest beside it when there is one (an edited
    or damaged session.json is an error, not a baseline)."""
    from emocheck.storage import MANIFEST, read_verified

    if path.name == SESSION_FILE and (path.parent / MANIFEST).is_file():
        data = read_verified(path.parent, path.name)
        if data is None:
            raise BaselineError(f"{path} does not match the checksum in {path.parent / MANIFEST} (damaged or "
                                "edited); rerun the session or pass a copy you trust")
        return data
    return path.read_bytes()


def load_verdicts(path, profile: str | None = None) -> dict[str, dict]:
    """{claim_id: {"verdict", "d", "registration"}} of a session.json or of the lock's expected verdicts
    (``profile``: the lock entry to read; needed when the lock holds several). BaselineError when the file
    cannot be read or holds no verdict."""
    path = session_path(path)
    try:
        data = json.loads(_read_session_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {path} does not exist: pass a previous run's "
                            "results/<profile>/statistics/session.json (or the preregistration lock)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline {path} is not readable JSON ({exc}); pass a previous run's session.json") \
            from None
    if isinstance(data, dict) and data.get("format") == "emocheck-preregistration":
        profiles = data.get("profiles") or {}
        if profile is None and len(profiles) == 1:
            profile = next(iter(profiles))
        entry = profiles.get(profile) if profile is not None else None
        if entry is None:
            raise BaselineError(f"baseline {path} is a preregistration lock without an entry for profile "
                                f"{profile!r} (it has: {', '.join(sorted(profiles)) or 'none'})")
        out = {cid: {"verdict": c["expected_verdict"], "d": None, "registration": PRE_REGISTERED}
               for cid, c in (entry.get("claims") or {}).items() if c.get("expected_verdict")}
        bad = sorted({v["verdict"] for v in out.values()} - set(VERDICTS))
        if bad:
            raise BaselineError(f"baseline {path}: expected_verdict must be one of {VERDICTS}, found {bad}")
        if not out:
            raise BaselineError(f"baseline {path}: no claim of profile {profile!r} has an expected_verdict; add "
                                "\"expected_verdict\": \"supported\" (or refuted / inconclusive) to the claims "
                                "the run must keep, or pass a previous run's session.json")
        return out
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list) or not all(isinstance(c, dict) and "claim_id" in c for c in claims):
        raise BaselineError(f"baseline {path} has no list of claims with claim_id and verdict: pass a previous "
                            "run's results/<profile>/statistics/session.json")
    return {c["claim_id"]: {"verdict": c.get("verdict"), "d": c.get("d"), "registration": c.get("registration")}
            for c in claims}


def compare_verdicts(a: dict[str, dict], b: dict[str, dict]) -> SessionComparison:
    """Compare two {claim_id: {"verdict", "d", "registration"}} maps, ``a`` the baseline and ``b`` now."""
    common = sorted(set(a) & set(b))
    changes = []
    for k in sorted(set(a) | set(b)):
        before = a[k].get("verdict") if k in a else None
        after = b[k].get("verdict") if k in b else None
        if k in a and k in b and _same(before, after):
            continue
        fails, why = regression(before, after, (b.get(k) or {}).get("registration"))
        changes.append(VerdictChange(k, before, after, fails, why, (b.get(k) or a.get(k) or {}).get("registration")))
    changes.sort(key=lambda c: (not c.fails, c.claim_id))
    d_changes = []
    for k in common:
        da, db = _finite(a[k].get("d")), _finite(b[k].get("d"))
        if da is None and db is None:
            continue
        diff = math.inf if (da is None or db is None) else abs(db - da)   # a d on one side only differs
        if diff > 0:
            d_changes.append((k, da, db, diff))
    d_changes.sort(key=lambda r: (-r[3], r[0]))
    worst, worst_id = (d_changes[0][3], d_changes[0][0]) if d_changes else (0.0, None)
    return SessionComparison(common=len(common), changes=changes, only_a=sorted(set(a) - set(b)),
                             only_b=sorted(set(b) - set(a)), max_abs_d_diff=worst, max_claim=worst_id,
                             d_changes=d_changes, a=a, b=b)


def compare_sessions(a_path, b_path, profile: str | None = None) -> SessionComparison:
    """Compare run ``b_path`` against baseline ``a_path`` (each a session.json; ``a_path`` may be the
    preregistration lock with expected verdicts, read for ``profile``)."""
    return compare_verdicts(load_verdicts(a_path, profile), load_verdicts(b_path, profile))


def _fmt_d(d: float | None) -> str:
    return "-" if d is None else f"{d:+.3f}"


def format_comparison(r: SessionComparison, *, top: int = 10, d_tolerance: float = 0.0) -> str:
    """A plain-text report (`emocheck compare`): one summary line, the verdict changes (regressions
    first), the largest d changes (above `d_tolerance`, at most `top`), the claims only one side has."""
    from tabulate import tabulate

    lines = [f"{r.common} claims in both, {len(r.flips)} verdicts differ, largest |d| difference "
             f"{r.max_abs_d_diff:.2e}" + (f" ({r.max_claim})" if r.max_claim else "")]
    flips = [c for c in r.changes if c.before is not None and c.after is not None]
    if flips:
        rows = [(c.claim_id, c.before, c.after, _fmt_d(_finite(r.a[c.claim_id].get("d"))),
                 _fmt_d(_finite(r.b[c.claim_id].get("d"))), "REGRESSION: " + c.why if c.fails else c.why)
                for c in flips]
        lines += ["", "verdict changes:", tabulate(rows, headers=["claim", "verdict A", "verdict B", "d A", "d B", "why"],
                                                   disable_numparse=True)]
    big = [row for row in r.d_changes if row[3] > d_tolerance][:max(top, 0)]
    if big:
        rows = [(k, _fmt_d(da), _fmt_d(db), "inf" if math.isinf(diff) else f"{diff:.2e}",
                 r.a[k].get("verdict"), r.b[k].get("verdict")) for k, da, db, diff in big]
        lines += ["", f"largest d changes (top {len(big)} of {len(r.d_changes)}):",
                  tabulate(rows, headers=["claim", "d A", "d B", "|d B - d A|", "verdict A", "verdict B"],
                           disable_numparse=True)]
    for side, ids in (("A", r.only_a), ("B", r.only_b)):
        if ids:
            lines += ["", f"only in {side} ({len(ids)}):", *[f"  {k}" for k in ids]]
    return "\n".join(lines)


def exit_status(r: SessionComparison, *, allow_missing: bool = False, max_d_diff: float | None = None) -> int:
    """1 when a verdict changed, a claim is on one side only (unless `allow_missing`) or a |d| change
    exceeds `max_d_diff`; else 0."""
    if r.flips:
        return 1
    if not allow_missing and (r.only_a or r.only_b):
        return 1
    if max_d_diff is not None and r.max_abs_d_diff > max_d_diff:
        return 1
    return 0
