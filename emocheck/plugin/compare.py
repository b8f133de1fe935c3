"""Compare two sessions' claims: verdict changes and effect-size (d) changes.

    result = compare_sessions("results/ci/statistics/session.json", "other/results/ci")
    result.verdict_changes        # [(claim_id, verdict_a, verdict_b), ...]
    print(format_comparison(result))

A session is read from its ``session.json`` (``results/<profile>/statistics/session.json``); a folder
argument may be the statistics folder or the ``results/<profile>`` folder above it. When the folder
holds the statistics manifest (``manifest.json``), ``session.json`` is read through it, so a damaged
file is an error rather than a silent comparison. The verdict is compared as the string the session
recorded, whatever its vocabulary, so sessions written by other versions compare the same way.
This is how a change (a speed lever, a new model revision, a refactor) is checked against the whole
study: the same verdicts and, up to float rounding, the same d.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from emocheck.errors import ConfigError
from emocheck.storage import MANIFEST, read_verified

SESSION_FILE = "session.json"


def session_path(path: str | Path) -> Path:
    """The session.json a user pointed at: the file itself, or one inside a statistics / results folder."""
    p = Path(path)
    if p.is_dir():
        for candidate in (p / SESSION_FILE, p / "statistics" / SESSION_FILE):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"{p} holds no {SESSION_FILE} (looked in {p} and {p / 'statistics'}); "
                          "pass a session.json or the results/<profile> folder of a finished claims session")
    if not p.is_file():
        raise ConfigError(f"{p} does not exist; pass a session.json or a results/<profile> folder")
    return p


def load_session(path: str | Path) -> dict:
    """The parsed session.json, verified against the statistics manifest when there is one."""
    p = session_path(path)
    if (p.parent / MANIFEST).is_file():
        data = read_verified(p.parent, p.name)
        if data is None:
            raise ConfigError(f"{p} does not match the checksum in {p.parent / MANIFEST} (damaged or edited); "
                              "rerun the session or pass a copy you trust")
    else:
        data = p.read_bytes()
    try:
        session = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{p} is not JSON ({exc}); pass the session.json a claims session wrote") from None
    if not isinstance(session, dict) or not isinstance(session.get("claims"), list):
        raise ConfigError(f"{p} has no 'claims' list: not a session.json written by a claims session")
    return session


def load_claims(path: str | Path) -> dict[str, dict]:
    """{claim_id: claim record} of one session."""
    return {c["claim_id"]: c for c in load_session(path)["claims"] if isinstance(c, dict) and "claim_id" in c}


def _finite(d) -> float | None:
    try:
        x = float(d)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass
class SessionComparison:
    """What differs between session A and session B (claims matched by claim id)."""

    common: list[str]
    verdict_changes: list[tuple[str, object, object]]
    d_changes: list[tuple[str, float | None, float | None, float]]   # (claim, d_a, d_b, |d_b - d_a|), largest first
    only_a: list[str]
    only_b: list[str]
    a: dict[str, dict] = field(default_factory=dict, repr=False)
    b: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def max_abs_d_diff(self) -> float:
        return self.d_changes[0][3] if self.d_changes else 0.0

    @property
    def max_claim(self) -> str | None:
        return self.d_changes[0][0] if self.d_changes else None

    def as_dict(self) -> dict:
        """The shape benchmarks/compare_sessions.py has always returned."""
        return {"common": len(self.common), "flips": list(self.verdict_changes), "max_abs_d_diff": self.max_abs_d_diff,
                "max_claim": self.max_claim, "only_a": list(self.only_a), "only_b": list(self.only_b)}


def compare_claims(a: dict[str, dict], b: dict[str, dict]) -> SessionComparison:
    """Compare two {claim_id: record} maps. A d on one side only (missing or non-finite on the other)
    is an infinite difference; two missing d are equal."""
    common = sorted(set(a) & set(b))
    flips = [(k, a[k].get("verdict"), b[k].get("verdict")) for k in common if a[k].get("verdict") != b[k].get("verdict")]
    d_changes = []
    for k in common:
        da, db = _finite(a[k].get("d")), _finite(b[k].get("d"))
        if da is None and db is None:
            continue
        diff = math.inf if (da is None or db is None) else abs(db - da)
        if diff > 0:
            d_changes.append((k, da, db, diff))
    d_changes.sort(key=lambda r: (-r[3], r[0]))
    return SessionComparison(common, flips, d_changes, sorted(set(a) - set(b)), sorted(set(b) - set(a)), a, b)


def compare_sessions(a_path: str | Path, b_path: str | Path) -> SessionComparison:
    """Compare the claims of two sessions (session.json files or results/<profile> folders)."""
    return compare_claims(load_claims(a_path), load_claims(b_path))


def _fmt_d(d: float | None) -> str:
    return "-" if d is None else f"{d:+.3f}"


def format_comparison(r: SessionComparison, *, top: int = 10, d_tolerance: float = 0.0) -> str:
    """A plain-text report: one summary line, the verdict changes, the largest d changes (above
    `d_tolerance`, at most `top`), and the claims only one side has."""
    from tabulate import tabulate

    lines = [f"{len(r.common)} claims in both, {len(r.verdict_changes)} verdicts differ, largest |d| difference "
             f"{r.max_abs_d_diff:.2e}" + (f" ({r.max_claim})" if r.max_claim else "")]
    if r.verdict_changes:
        rows = [(k, va, vb, _fmt_d(_finite(r.a[k].get("d"))), _fmt_d(_finite(r.b[k].get("d"))))
                for k, va, vb in r.verdict_changes]
        lines += ["", "verdict changes:", tabulate(rows, headers=["claim", "verdict A", "verdict B", "d A", "d B"], disable_numparse=True)]
    big = [row for row in r.d_changes if row[3] > d_tolerance][:max(top, 0)]
    if big:
        rows = [(k, _fmt_d(da), _fmt_d(db), "inf" if math.isinf(diff) else f"{diff:.2e}",
                 r.a[k].get("verdict"), r.b[k].get("verdict")) for k, da, db, diff in big]
        lines += ["", f"largest d changes (top {len(big)} of {len(r.d_changes)}):",
                  tabulate(rows, headers=["claim", "d A", "d B", "|d B - d A|", "verdict A", "verdict B"], disable_numparse=True)]
    for side, ids in (("A", r.only_a), ("B", r.only_b)):
        if ids:
            lines += ["", f"only in {side} ({len(ids)}):", *[f"  {k}" for k in ids]]
    return "\n".join(lines)


def exit_status(r: SessionComparison, *, allow_missing: bool = False, max_d_diff: float | None = None) -> int:
    """1 when a verdict changed, a claim is on one side only (unless `allow_missing`) or a |d| change
    exceeds `max_d_diff`; else 0."""
    if r.verdict_changes:
        return 1
    if not allow_missing and (r.only_a or r.only_b):
        return 1
    if max_d_diff is not None and r.max_abs_d_diff > max_d_diff:
        return 1
    return 0
