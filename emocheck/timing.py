"""Per-phase, per-model wall time, collected across processes (xdist workers) of one run.

Library code wraps a unit of work in one line::

    with timing.phase("generation", model=loaded.name, tokens=n_tokens):
        ...

Phases are free-form names; the pipeline uses ``PHASES`` (extraction, generation, fluency,
evaluators, statistics, figures). Nested phases are recorded separately and the summary does not
add a nested phase to its parent's time (each phase is its own line), so a caller should time
disjoint units.

Each process keeps its records in memory and, when a results location is known, rewrites ONE JSON
file for itself after any phase of at least half a second, at most every two seconds otherwise, at
exit, and on ``flush()`` (a pytest session should call it in each worker's ``pytest_sessionfinish``
before the controller reads the summary): ``<results_root>/<profile>/timing/<host>-<pid>.json`` (atomic,
through ``emocheck.storage``; no two processes share a file, so no lock is needed). The location
comes from ``configure(results_root, profile)`` or, inside a pytest session, from the plugin's
``EMOCHECK_RESULTS_DIR`` / ``EMOCHECK_PROFILE`` environment variables. Every file carries a run id
(``$EMOCHECK_RUN_ID``, else xdist's ``PYTEST_XDIST_TESTRUNUID`` shared by all workers of a session,
else this process's own), and ``summary(results_root, profile)`` adds up the files of the newest run
(or of ``run=``), per phase and per model. ``one_line(summary)`` formats it for a terminal.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from emocheck.storage import atomic_write_json

PHASES = ("extraction", "generation", "fluency", "evaluators", "statistics", "figures")
TIMING_VERSION = 1

_lock = threading.Lock()
_records: list[dict] = []
_target: dict = {"root": None, "profile": None}
_own_run = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_started = time.time()
_flushed = [0.0]
FLUSH_PHASE_SECONDS = 0.5
FLUSH_INTERVAL = 2.0


def run_id() -> str:
    return os.environ.get("EMOCHECK_RUN_ID") or os.environ.get("PYTEST_XDIST_TESTRUNUID") or _own_run


def configure(results_root: str | os.PathLike | None, profile: str | None) -> None:
    """Write this process's timing file under results_root/profile/timing (None: in memory only,
    unless the pytest plugin's environment variables name a location)."""
    _target["root"] = None if results_root is None else Path(results_root)
    _target["profile"] = profile


def reset() -> None:
    """Forget this process's records (tests and benchmarks)."""
    with _lock:
        _records.clear()


def records() -> list[dict]:
    with _lock:
        return [dict(r) for r in _records]


def _location() -> Path | None:
    root, profile = _target["root"], _target["profile"]
    if root is None:
        env_root, env_profile = os.environ.get("EMOCHECK_RESULTS_DIR"), os.environ.get("EMOCHECK_PROFILE")
        if not (env_root and env_profile):
            return None
        root, profile = Path(env_root), env_profile
    if not profile:
        return None
    return Path(root) / str(profile) / "timing" / f"{socket.gethostname()}-{os.getpid()}.json"


def flush() -> Path | None:
    """Rewrite this process's timing file (called after every phase); returns its path or None."""
    path = _location()
    if path is None:
        return None
    with _lock:
        payload = {"version": TIMING_VERSION, "run": run_id(), "pid": os.getpid(), "host": socket.gethostname(),
                   "started": _started, "updated": time.time(), "records": [dict(r) for r in _records]}
    atomic_write_json(path, payload)
    _flushed[0] = time.time()
    return path


def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):
        if _records:
            flush()


atexit.register(_flush_at_exit)


@contextlib.contextmanager
def phase(name: str, model: str | None = None, tokens: int | None = None, **extra) -> Iterator[dict]:
    """Time the block as phase `name` of `model`. The yielded dict may be updated inside the block
    (e.g. ``rec["tokens"] = n`` once the count is known). Recorded even when the block raises."""
    rec = {"phase": str(name), "model": model or "", "tokens": tokens, **extra}
    start = time.perf_counter()
    try:
        yield rec
    finally:
        rec["seconds"] = time.perf_counter() - start
        rec["end"] = time.time()
        with _lock:
            _records.append(rec)
            # Rewriting the file after every tiny phase would cost more than the phase: write when the
            # phase was long or the file is a second old; atexit (and `flush()`) write the rest.
            due = rec["seconds"] >= FLUSH_PHASE_SECONDS or time.time() - _flushed[0] >= FLUSH_INTERVAL
        if due:
            with contextlib.suppress(OSError):     # timing must never break the work it measures
                flush()


def _read(root: Path, profile: str) -> list[dict]:
    out = []
    for path in sorted((Path(root) / profile / "timing").glob("*.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("records"), list):
                out.append(data)
    return out


def summary(results_root: str | os.PathLike, profile: str, run: str | None = None) -> dict:
    """Wall time per phase and per model of one run (default: the newest), from every process's file.

    Returns ``{"run", "processes", "total_seconds", "phases": {phase: {"seconds", "tokens", "calls",
    "models": {model: {"seconds", "tokens", "calls"}}}}}``. ``total_seconds`` is the sum over phases
    (CPU-side work of parallel workers adds up, so it can exceed the session's wall time).
    """
    files = _read(Path(results_root), str(profile))
    if run is None and files:
        run = max(files, key=lambda f: f.get("updated", 0)).get("run")
    files = [f for f in files if f.get("run") == run]
    phases: dict = defaultdict(lambda: {"seconds": 0.0, "tokens": 0, "calls": 0, "models": {}})
    for f in files:
        for r in f["records"]:
            p = phases[r.get("phase", "?")]
            m = p["models"].setdefault(r.get("model") or "", {"seconds": 0.0, "tokens": 0, "calls": 0})
            for d in (p, m):
                d["seconds"] += float(r.get("seconds", 0.0))
                d["tokens"] += int(r.get("tokens") or 0)
                d["calls"] += 1
    ordered = {k: phases[k] for k in PHASES if k in phases}
    ordered.update({k: v for k, v in sorted(phases.items()) if k not in ordered})
    return {"run": run, "processes": len(files), "total_seconds": sum(p["seconds"] for p in ordered.values()),
            "phases": ordered}


def one_line(summ: dict) -> str:
    """'timing: extraction 12.3s, generation 301.0s (gemma3-270m 200.1s, smollm2-135m 100.9s), ...'"""
    if not summ.get("phases"):
        return "timing: nothing recorded"
    parts = []
    for name, p in summ["phases"].items():
        models = [(m, v["seconds"]) for m, v in p["models"].items() if m]
        detail = f" ({', '.join(f'{m} {s:.1f}s' for m, s in models)})" if len(models) > 1 else ""
        parts.append(f"{name} {p['seconds']:.1f}s{detail}")
    return f"timing ({summ['processes']} process(es)): " + ", ".join(parts) + f"; total {summ['total_seconds']:.1f}s"


def timed(name: str):
    """Decorator: time every call as phase `name`, the model being the first argument's `.name`
    (a LoadedModel) - one line at a library call site."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            model = getattr(args[0], "name", None) if args else None
            with phase(name, model=model):
                return fn(*args, **kwargs)
        return inner
    return wrap
