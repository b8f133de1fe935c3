"""Pre-registration: lock every claim's spec hash before any result exists, then compare each run to it.

``pytest hypotheses/ --emocheck-preregister --emocheck-profile ci`` collects the claims, computes
their specs (``emocheck.plugin.spec_hash``) and writes ``preregistration.json`` (one entry per
profile; commit it) without running a claim or reading a result. Every later run compares each
claim with the lock:

* ``pre-registered``: the spec hash is the one in the lock;
* ``changed after registration``: the claim is in the lock with another hash; the fields that
  changed are listed (``claim.min_d: 0.5 -> 0.8``, ``data.emotion_prompts.csv: 3f.. -> 9a..``);
* ``exploratory``: the claim is not in the lock (added later, or no lock for this profile).

A family whose membership differs from the lock (a claim added or removed) is flagged, because
its correction changed. The lock cannot be written when results already exist for the profile
unless ``--emocheck-preregister-force`` is given, and a forced lock says so (``forced``, the result
files that existed) in the lock, in every later report and in session.json.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Iterable

from emocheck.errors import ConfigError
from emocheck.plugin.spec_hash import diff_specs, family_hash
from emocheck.storage import atomic_write_json, file_lock

FORMAT = "emocheck-preregistration"
VERSION = 1
PRE_REGISTERED = "pre-registered"
CHANGED = "changed after registration"
EXPLORATORY = "exploratory"
STATUSES = (PRE_REGISTERED, CHANGED, EXPLORATORY)
# Folders under results/<profile>/ that hold inputs (activations, vectors built from training
# prompts), not outcomes: they may exist before a lock is written.
INPUT_CACHES = ("activations", "emotion_vectors", "emotion_subspaces")

__all__ = ["CHANGED", "EXPLORATORY", "PRE_REGISTERED", "PreregistrationError", "compare", "existing_results",
           "load", "profile_entry", "status_text", "write"]


class PreregistrationError(ConfigError):
    """The lock cannot be written or read as asked; the message says what to do."""


def existing_results(results_root: Path, profile: str) -> list[str]:
    """Result files of ``profile`` (names only, never opened), excluding input caches and lock files."""
    base = Path(results_root) / profile
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if rel.parts[0] in INPUT_CACHES or path.name.endswith(".lock") or not path.is_file():
            continue
        found.append(rel.as_posix())
    return found


def load(path: Path) -> dict | None:
    """The lock file, or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PreregistrationError(
            f"{path} is not a readable preregistration file ({exc}); restore it from git "
            "(git checkout -- preregistration.json) or write a new one with --emocheck-preregister"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("profiles"), dict):
        raise PreregistrationError(
            f"{path} is not an emocheck preregistration file (format {FORMAT!r}); restore it from git or "
            "write a new one with --emocheck-preregister"
        )
    return data


def profile_entry(lock: dict | None, profile: str) -> dict | None:
    return (lock or {}).get("profiles", {}).get(profile)


def write(path: Path, profile: str, claims: dict[str, dict], families: dict[str, Iterable[str]], *,
          results_root: Path, force: bool = False, command: list[str] | None = None,
          git: dict | None = None, now: str | None = None) -> dict:
    """Write (or replace) the lock entry of ``profile``; returns it.

    claims: {claim_id: {"hash", "spec"}}; families: {family: declared member claim ids}. Raises
    PreregistrationError when results of the profile exist and ``force`` is False.
    """
    path = Path(path)
    seen = existing_results(results_root, profile)
    if seen and not force:
        shown = ", ".join(seen[:5]) + (f" and {len(seen) - 5} more" if len(seen) > 5 else "")
        raise PreregistrationError(
            f"results already exist for profile {profile!r} under {Path(results_root) / profile} ({shown}): a "
            "lock written now would not be a pre-registration. Register before running, or pass "
            "--emocheck-preregister-force to write it anyway (recorded as forced in the lock and every report)"
        )
    fams = {}
    for name, members in sorted(families.items()):
        members = sorted(members)
        fams[name] = {"members": members,
                      "hash": family_hash({m: claims[m]["hash"] for m in members if m in claims})}
    entry = {
        "registered_utc": now or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "forced": bool(seen and force),
        "results_seen": seen[:50],
        "n_results_seen": len(seen),
        "command": list(command or []),
        "git": git or {},
        "claims": {cid: {"hash": c["hash"], "spec": c["spec"]} for cid, c in sorted(claims.items())},
        "families": fams,
    }
    with file_lock(Path(results_root) / ".preregistration"):  # not beside the lock: it is committed
        lock = load(path) or {"format": FORMAT, "version": VERSION, "profiles": {}}
        lock["profiles"][profile] = entry
        atomic_write_json(path, lock)
    return entry


def compare(entry: dict | None, claims: dict[str, dict], families: dict[str, Iterable[str]]
            ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each claim's registration status and each family's membership check against the lock entry.

    claims: {claim_id: {"hash", "spec"}} of this run; families: {family: declared members now}.
    Returns ({claim_id: {"status", "changes", "registered_hash", "hash"}},
             {family: {"membership_changed", "added", "removed", "registered"}}).
    """
    registered = (entry or {}).get("claims", {})
    statuses = {}
    for cid, cur in claims.items():
        old = registered.get(cid)
        if old is None:
            statuses[cid] = {"status": EXPLORATORY, "changes": [], "registered_hash": None, "hash": cur["hash"]}
        elif old.get("hash") == cur["hash"]:
            statuses[cid] = {"status": PRE_REGISTERED, "changes": [], "registered_hash": old["hash"], "hash": cur["hash"]}
        else:
            statuses[cid] = {"status": CHANGED, "changes": diff_specs(old.get("spec", {}), cur["spec"]),
                             "registered_hash": old.get("hash"), "hash": cur["hash"]}
    fams = {}
    reg_fams = (entry or {}).get("families", {})
    for name, members in families.items():
        now = set(members)
        before = set(reg_fams.get(name, {}).get("members", []))
        fams[name] = {"registered": name in reg_fams, "membership_changed": entry is not None and now != before,
                      "added": sorted(now - before) if entry is not None else [],
                      "removed": sorted(before - now)}
    return statuses, fams


def _short(value) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:10]  # a sha256
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def status_text(status: dict | None, max_changes: int = 4) -> str:
    """One line: "changed after registration: claim.min_d 0.5 -> 0.8; ..." (or just the status)."""
    if not status:
        return "-"
    changes = status.get("changes") or []
    if not changes:
        return status["status"]
    parts = [f"{c['field']} {_short(c['from'])} -> {_short(c['to'])}" for c in changes[:max_changes]]
    if len(changes) > max_changes:
        parts.append(f"{len(changes) - max_changes} more")
    return f"{status['status']}: " + "; ".join(parts)
