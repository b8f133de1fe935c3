"""The pytest glue of pre-registration and provenance (kept out of ``hooks.py``, which calls it).

* :func:`claim_registration_spec`: a collected claim's spec and hash (worker side, once per item);
* :class:`PreregisterPlugin`: ``--emocheck-preregister`` writes the lock after collection and runs
  no test;
* :class:`RegistrationStatusPlugin`: ``--emocheck-registration-status`` compares the collected specs
  with the lock and prints each claim's status, running no test and writing nothing;
* :func:`apply_registration`: controller side, compares this run's specs with the lock and adds the
  ``registration`` columns to the rows and the membership flags to the families;
* :func:`session_json`: writes ``session.json`` (``emocheck.plugin.provenance``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emocheck.plugin import preregistration as prereg
from emocheck.plugin.claims import format_statement
from emocheck.storage import atomic_write_json

SPEC_KEY = pytest.StashKey[dict]()


def _params(item) -> dict:
    callspec = getattr(item, "callspec", None)
    out = {}
    for k, v in (callspec.params.items() if callspec else []):
        out[k] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return out


def claim_registration_spec(item, spec, state) -> dict:
    """{"spec", "hash"} of the claim (``{"spec": None, "hash": None, "error": ...}`` if it cannot be built)."""
    cached = item.stash.get(SPEC_KEY, None)
    if cached is not None:
        return cached
    from emocheck.dataset import data_dir
    from emocheck.plugin.spec_hash import item_spec

    params = _params(item)
    profile = {k: v for k, v in state.profile.to_dict().items() if k != "models"}
    try:
        out = item_spec(item, statement=format_statement(spec.statement, params), spec=spec,
                        effective_alpha=spec.effective_alpha(state.alpha), params=params,
                        analysis={"correction": state.correction, "ci_method": state.ci_method},
                        profile=profile, data_root=Path(data_dir()), project_root=Path(item.config.rootpath))
    except Exception as exc:  # noqa: BLE001 - the claim still runs; it is reported as exploratory
        out = {"spec": None, "hash": None, "error": f"{type(exc).__name__}: {exc}"}
    item.stash[SPEC_KEY] = out
    return out


def _command(config) -> list[str]:
    return [Path(sys.executable).name, "-m", "pytest", *map(str, config.invocation_params.args)]


def _family_members(state) -> dict[str, list[str]]:
    fams: dict[str, list[str]] = {}
    for members in state.declared.values():
        for cid, fam in members.items():
            fams.setdefault(fam, []).append(cid)
    return fams


class PreregisterPlugin:
    """Registered on the controller with ``--emocheck-preregister``."""

    def __init__(self, config, state) -> None:
        self.config, self.state = config, state
        self.error: str | None = None

    def pytest_collection_finish(self, session) -> None:
        from emocheck.plugin.claims import claim_spec
        from emocheck.plugin.provenance import git_state

        state = self.state
        claims = {}
        for cid, item in sorted(state.declared_items.items()):
            spec = claim_spec(item)
            rec = claim_registration_spec(item, spec, state)
            if rec.get("hash") is None:
                raise pytest.UsageError(f"emocheck: cannot compute the spec of {cid} for the lock: {rec.get('error')}")
            claims[cid] = rec
        try:
            state.prereg_entry = prereg.write(
                state.prereg_path, state.profile.name, claims, _family_members(state),
                results_root=state.results_root, force=state.preregister_force,
                command=_command(self.config), git=git_state(self.config.rootpath))
        except prereg.PreregistrationError as exc:
            self.error = str(exc)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        if self.error:
            raise session.Failed(f"emocheck: {self.error}")
        return True  # pre-registration runs no claim

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        entry = self.state.prereg_entry
        tr = terminalreporter
        tr.section("emocheck: pre-registration")
        if self.error or entry is None:
            tr.write_line(f"NOT written: {self.error}", red=True)
            return
        forced = (f"; FORCED although {entry['n_results_seen']} result files existed" if entry["forced"] else "")
        tr.write_line(f"registered {len(entry['claims'])} claims in {len(entry['families'])} families for profile "
                      f"{self.state.profile.name} in {self.state.prereg_path}{forced}; no claim was run. "
                      "Commit the file before running the claims.")


class RegistrationStatusPlugin:
    """Registered on the controller with ``--emocheck-registration-status`` (a dry check before a run)."""

    def __init__(self, config, state) -> None:
        self.config, self.state = config, state
        self.statuses: dict[str, dict] = {}
        self.families: dict[str, dict] = {}
        self.entry: dict | None = None
        self.error: str | None = None

    def pytest_collection_finish(self, session) -> None:
        from emocheck.plugin.claims import claim_spec

        state = self.state
        try:
            self.entry = prereg.profile_entry(prereg.load(state.prereg_path), state.profile.name)
        except prereg.PreregistrationError as exc:
            self.error = str(exc)
            return
        current = {}
        for cid, item in sorted(state.declared_items.items()):
            rec = claim_registration_spec(item, claim_spec(item), state)
            if rec.get("hash") is None:
                self.statuses[cid] = {"status": prereg.EXPLORATORY, "changes": [],
                                      "error": f"spec could not be computed: {rec.get('error')}"}
            else:
                current[cid] = rec
        members = {fam: set(m) for fam, m in _family_members(state).items()}
        statuses, self.families = prereg.compare(self.entry, current, members)
        self.statuses.update(statuses)
        state.registration_check = {"statuses": self.statuses, "families": self.families,
                                    "lock_found": self.entry is not None, "error": self.error}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        if self.error:
            raise session.Failed(f"emocheck: {self.error}")
        return True  # a status check runs no claim

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        tr = terminalreporter
        tr.section("emocheck: registration status (no claim was run)")
        if self.error:
            tr.write_line(self.error, red=True)
            return
        if self.entry is None:
            tr.write_line(f"no lock for profile {self.state.profile.name} in {self.state.prereg_path}: all "
                          f"{len(self.statuses)} claims would be exploratory (write one with `emocheck preregister`)",
                          yellow=True)
            return
        counts: dict[str, int] = {}
        last = last_verdicts(self.state)
        for cid, st in sorted(self.statuses.items()):
            counts[st["status"]] = counts.get(st["status"], 0) + 1
            if st["status"] != prereg.PRE_REGISTERED:
                tr.write_line(f"{cid}: {prereg.status_text(st)}{' (' + st['error'] + ')' if st.get('error') else ''}"
                              + (f"; last verdict: {last[cid]}" if cid in last else ""), yellow=True)
        for name, fam in sorted(self.families.items()):
            if fam.get("membership_changed"):
                tr.write_line(f"family {name}: membership changed since the lock (added {fam['added'] or '-'}, "
                              f"removed {fam['removed'] or '-'}), so its correction would change", yellow=True)
        registered = set((self.entry or {}).get("claims", {}))
        gone = sorted(registered - set(self.statuses))
        if gone:
            tr.write_line(f"{len(gone)} registered claims are no longer collected: {', '.join(gone[:5])}"
                          f"{' ...' if len(gone) > 5 else ''}", yellow=True)
        tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        tr.write_line(f"lock {self.state.prereg_path} ({self.entry.get('registered_utc')}), profile "
                      f"{self.state.profile.name}: {tally}")
        if last:
            rows = [{"registration": st["status"], "verdict": last.get(cid, "not run")}
                    for cid, st in sorted(self.statuses.items())]
            tr.write_line(f"verdicts of the last run ({Path(self.state.results_root) / self.state.profile.name}"
                          f"/statistics/session.json): {registration_verdict_tally(rows)}")


def apply_registration(state, results: list[dict], rows: list[dict], families: dict) -> None:
    """Add registration status to every row and the membership flags to every family (in place)."""
    notes = []
    try:
        lock = prereg.load(state.prereg_path)
    except prereg.PreregistrationError as exc:
        lock = None
        notes.append(str(exc))
    entry = prereg.profile_entry(lock, state.profile.name)
    current, broken = {}, {}
    members: dict[str, set[str]] = {}
    for r in results:
        rs = r.get("registration_spec") or {}
        if rs.get("hash"):
            current[r["claim_id"]] = rs
        else:
            broken[r["claim_id"]] = rs.get("error") or "no spec recorded"
        members.setdefault(r["family"], set()).update(r.get("family_members") or [r["claim_id"]])
    statuses, fams = prereg.compare(entry, current, members)
    for cid, why in broken.items():
        statuses[cid] = {"status": prereg.EXPLORATORY, "changes": [], "registered_hash": None, "hash": None,
                         "error": f"spec could not be computed: {why}"}
    for row in rows:
        st = statuses.get(row["claim_id"])
        row["registration"] = st["status"] if st else "-"
        row["registration_changes"] = prereg.status_text(st) if st else "-"
        row["spec_hash"] = (st or {}).get("hash") or "-"
        row["registered_hash"] = (st or {}).get("registered_hash") or "-"
        row["family_membership_changed"] = bool(fams.get(row["family"], {}).get("membership_changed"))
    for name, fam in families.items():
        fam.update({k: fams.get(name, {}).get(k) for k in ("membership_changed", "added", "removed")})
    specs = {r["claim_id"]: (r.get("registration_spec") or {}).get("spec") for r in results}
    lock_info = None
    if entry is not None:
        lock_info = {k: entry.get(k) for k in ("registered_utc", "forced", "n_results_seen", "results_seen", "command", "git")}
        lock_info["path"] = str(state.prereg_path)
    state.registration = {
        "lock": lock_info,
        "lock_path": str(state.prereg_path),
        "claims": {cid: dict(st, spec=specs.get(cid)) for cid, st in statuses.items()},
        "families": fams,
        "notes": notes,
    }
    state.notes.extend(notes)


def registration_verdict_tally(rows: list[dict]) -> str:
    """"2 pre-registered (1 supported, 1 refuted), 3 exploratory (3 inconclusive)": each registration status
    with the verdicts of its claims, so a reader sees what the confirmatory claims found apart from the rest."""
    groups: dict[str, dict[str, int]] = {}
    for row in rows:
        by = groups.setdefault(row.get("registration", "-"), {})
        by[row.get("verdict") or "-"] = by.get(row.get("verdict") or "-", 0) + 1
    order = ("supported", "refuted", "inconclusive")
    parts = []
    for status, by in sorted(groups.items()):
        inner = ", ".join(f"{by[v]} {v}" for v in sorted(by, key=lambda v: (order.index(v) if v in order else 9, v)))
        parts.append(f"{sum(by.values())} {status} ({inner})")
    return ", ".join(parts)


def last_verdicts(state) -> dict[str, str]:
    """{claim_id: verdict} of the profile's last run (its statistics/session.json), {} when there is none or it
    cannot be read: the registration status shows what each claim last came out as, running nothing."""
    import json

    path = Path(state.results_root) / state.profile.name / "statistics" / "session.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {c["claim_id"]: str(c.get("verdict")) for c in data.get("claims", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def registration_summary_lines(state) -> list[tuple[str, bool]]:
    reg = state.registration
    if not reg:
        return []
    tally = registration_verdict_tally(state.rows)
    lines: list[tuple[str, bool]] = [("", False)]
    lock = reg.get("lock")
    if lock is None:
        lines.append((f"registration: no lock for profile {state.profile.name} in {reg['lock_path']}: every claim "
                      "is exploratory (write one with --emocheck-preregister before running)", False))
    else:
        forced = (f", FORCED after {lock.get('n_results_seen')} result files existed" if lock.get("forced") else "")
        lines.append((f"registration: lock {lock['path']} ({lock.get('registered_utc')}{forced}): {tally}",
                      bool(lock.get("forced"))))
    for row in state.rows:
        if row.get("registration") == prereg.CHANGED:
            lines.append((f"  {row['claim_id']}: {row['registration_changes']}", True))
    for name, fam in sorted((reg.get("families") or {}).items()):
        if fam.get("membership_changed"):
            lines.append((f"  family {name}: membership changed since the lock (added {fam['added'] or '-'}, "
                          f"removed {fam['removed'] or '-'}), so its correction changed", True))
    return lines


def session_json(session, state, results: list[dict], rows: list[dict], families: dict, out_dir: Path) -> Path:
    from emocheck.dataset import data_dir
    from emocheck.plugin.provenance import session_record

    config = session.config
    workers: Any = getattr(config.option, "numprocesses", None) or 0
    try:
        workers = int(workers)
    except (TypeError, ValueError):
        workers = -1  # "auto"/"logical": the count is xdist's
    times = {k: v for k, v in state.times.items() if not k.startswith("_")}
    times["total_until_report"] = time.perf_counter() - state.t0
    record = session_record(
        settings=state.settings(), rows=rows, results=results, families=families, root=Path(config.rootpath),
        data_root=Path(data_dir()), command=_command(config), workers=workers, own_timing=times,
        registration={k: v for k, v in (state.registration or {}).items() if k != "claims"} | {
            "claims": {cid: {k: v for k, v in st.items() if k != "spec"}
                       for cid, st in ((state.registration or {}).get("claims") or {}).items()}},
        models=state.profile.models if any(r.get("model") for r in rows) else (),
    )
    if state.baseline_comparison is not None:
        record["baseline"] = dict(state.baseline_comparison.to_dict(), path=str(state.baseline_path))
    state.phase_timing = record.get("timing")      # the terminal summary prints its one line
    path = Path(out_dir) / "session.json"
    atomic_write_json(path, record)
    return path
