"""Per-phase, per-model wall time, collected across processes (xdist workers) of one run.

Library code wraps a unit of work in one line::

    with timing.phase("generation", model=loaded.name, tokens=n_tokens):
        ...

Phases are free-form names; the pipeline uses ``PHASES`` (extraction, generation, fluency,
evaluators, statistics, figures; representations = reading the activation cache and computing vectors
and subspaces; then the pipeline stages heads, circuits, alignment). Phases
may nest: every record carries its inclusive wall time (``seconds``) and its **self** time
(``self_seconds``: minus the time of the phases opened inside it in the same thread), and the same
for process CPU time (``cpu_seconds`` / ``self_cpu_seconds``; ``time.process_time``, all threads of
the process, so on a shared machine CPU time says what the work cost when wall time says how long
others made it wait). The summary adds SELF times, so nested phases are never counted twice and the
total is the wall time covered by any phase. The pytest plugin opens one phase per claim test
(setup + call, named after its hypothesis module, e.g. ``q1_write_in``): its self time is the test
code that no library phase covers, so the phases of a session add up to its test time.

Each process keeps its records in memory and, when a results location is known, rewrites ONE JSON
file for itself after any phase of at least half a second, at most every two seconds otherwise, at
exit, and on ``flush()`` (a pytest session should call it in each worker's ``pytest_sessionfinish``
before the controller reads the summary): ``<results_root>/<profile>/timing/<host>-<pid>.json`` (atomic,
through ``emocheck.storage``; no two processes share a file, so no lock is needed). The location
comes from ``configure(results_root, profile)`` or, inside a pytest session, from the plugin's
``EMOCHECK_RESULTS_DIR`` / ``EMOCHECK_PROFILE`` environment variables. Every file carries a run id
(``$EMOCHECK_RUN_ID``, else xdist's ``PYTEST_XDIST_TESTRUNUID`` shared by all workers of a session,
else this process's own), and ``summary(results_root, profile)`` adds up the files of the newest run
(or of ``run=``), per phase and per model. ``one_line(summary)`` formats it for a terminal. After a
session has written session.json (which holds its own summary), ``prune`` deletes the files of all but
the newest ``KEEP_RUNS`` runs.
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

from emocheck.atomic import atomic_write_json

PHASES = ("extraction", "representations", "generation", "fluency", "evaluators", "statistics", "figures", "heads",
          "circuits", "alignment")
TIMING_VERSION = 2

_lock = threading.Lock()
_records: list[dict] = []
_target: dict = {"root": None, "profile": None}
_own_run = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_started = time.time()
_flushed = [0.0]
_local = threading.local()          # the open phases of this thread: [[child wall, child cpu], ...]
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


def _open_frames() -> list:
    frames = getattr(_local, "frames", None)
    if frames is None:
        frames = _local.frames = []
    return frames


def current() -> str | None:
    """The innermost open phase of this thread (None outside any phase)."""
    frames = _open_frames()
    return frames[-1][2] if frames else None


def count(**amounts: float) -> None:
    """Add work done (``tokens=``, ``flops=``, ...) to the innermost open phase of this thread (no-op
    outside a phase): a loop inside a decorated function reports what it processed."""
    frames = _open_frames()
    if frames:
        rec = frames[-1][4]
        for key, value in amounts.items():
            rec[key] = (rec.get(key) or 0) + value


@contextlib.contextmanager
def phase(name: str, model: str | None = None, tokens: int | None = None, **extra) -> Iterator[dict]:
    """Time the block as phase `name` of `model` (default: the model of the enclosing phase). The yielded dict may be updated inside the block
    (e.g. ``rec["tokens"] = n`` once the count is known). Recorded even when the block raises.
    Phases opened inside the block (same thread) are subtracted from its self time."""
    frames = _open_frames()
    if not model and frames:            # e.g. a figure drawn inside a model's phase belongs to that model
        model = frames[-1][3]
    rec = {"phase": str(name), "model": model or "", "tokens": tokens, **extra}
    if frames:
        rec["parent"] = frames[-1][2]
    frame = [0.0, 0.0, str(name), model or "", rec]
    frames.append(frame)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield rec
    finally:
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        frames.pop()
        if frames:                      # the parent's self time excludes this phase
            frames[-1][0] += wall
            frames[-1][1] += cpu
        rec.update(seconds=wall, self_seconds=max(0.0, wall - frame[0]), cpu_seconds=cpu,
                   self_cpu_seconds=max(0.0, cpu - frame[1]), end=time.time())
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


#: Runs whose timing files a results folder keeps (`prune`): the newest few, for comparing runs.
KEEP_RUNS = 5


def prune(results_root: str | os.PathLike, profile: str, keep_runs: int = KEEP_RUNS) -> list[Path]:
    """Delete the timing files of all but the newest ``keep_runs`` runs (by their files' last update);
    the current process's run is always kept. Files that cannot be read are left alone. Returns the
    deleted paths. The plugin calls it once per session, after session.json is written, so a results
    folder holds a handful of runs instead of one file per process of every run ever made."""
    folder = Path(results_root) / str(profile) / "timing"
    newest: dict[str, float] = {}
    paths: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("run"), str):
                run = data["run"]
                newest[run] = max(newest.get(run, 0.0), float(data.get("updated") or 0.0))
                paths[run].append(path)
    ordered = sorted(newest, key=lambda r: -newest[r])
    keep = set(ordered[:max(1, int(keep_runs))]) | {run_id()}
    deleted = []
    for run in ordered:
        if run in keep:
            continue
        for path in paths[run]:
            with contextlib.suppress(OSError):
                path.unlink()
                deleted.append(path)
    return deleted


_FIELDS = (("seconds", "self_seconds"), ("inclusive_seconds", "seconds"), ("cpu_seconds", "self_cpu_seconds"))


def _empty() -> dict:
    return {"seconds": 0.0, "inclusive_seconds": 0.0, "cpu_seconds": 0.0, "tokens": 0, "flops": 0.0, "calls": 0}


def summary(results_root: str | os.PathLike, profile: str, run: str | None = None) -> dict:
    """Time per phase and per model of one run (default: the newest), from every process's file.

    Returns ``{"run", "processes", "total_seconds", "total_cpu_seconds", "phases": {phase: {"seconds",
    "inclusive_seconds", "cpu_seconds", "tokens", "flops", "calls", "models": {model: {...the same}}}}}``
    (``flops``: the matrix-multiply FLOPs of the tokens the phase processed, where its code counts them).
    ``seconds`` and ``cpu_seconds`` are SELF times (nested phases subtracted), so they add up:
    ``total_seconds`` is the wall time covered by phases, summed over processes (parallel workers add
    up, so it can exceed the session's wall time). Records of version 1 (no self time) count whole.
    """
    files = _read(Path(results_root), str(profile))
    if run is None and files:
        run = max(files, key=lambda f: f.get("updated", 0)).get("run")
    files = [f for f in files if f.get("run") == run]
    phases: dict = defaultdict(lambda: {**_empty(), "models": {}})
    for f in files:
        for r in f["records"]:
            p = phases[r.get("phase", "?")]
            m = p["models"].setdefault(r.get("model") or "", _empty())
            for d in (p, m):
                for out, key in _FIELDS:
                    d[out] += float(r.get(key, r.get("seconds", 0.0)) or 0.0)
                d["tokens"] += int(r.get("tokens") or 0)
                d["flops"] += float(r.get("flops") or 0.0)
                d["calls"] += 1
    ordered = {k: phases[k] for k in PHASES if k in phases}
    ordered.update({k: v for k, v in sorted(phases.items()) if k not in ordered})
    return {"run": run, "processes": len(files), "total_seconds": sum(p["seconds"] for p in ordered.values()),
            "total_cpu_seconds": sum(p["cpu_seconds"] for p in ordered.values()), "phases": ordered}


def one_line(summ: dict) -> str:
    """'timing (2 process(es)): extraction 12.3s, generation 301.0s (gemma3-270m 200.1s, smollm2-135m
    100.9s), ...; total 400.2s wall, 380.0s CPU' (self times: nested phases are not counted twice)."""
    if not summ.get("phases"):
        return "timing: nothing recorded"
    parts = []
    for name, p in sorted(summ["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
        models = [(m, v["seconds"]) for m, v in p["models"].items() if m]
        detail = f" ({', '.join(f'{m} {s:.1f}s' for m, s in models)})" if len(models) > 1 else ""
        parts.append(f"{name} {p['seconds']:.1f}s{detail}")
    cpu = summ.get("total_cpu_seconds")
    tail = f"; total {summ['total_seconds']:.1f}s" + (f" wall, {cpu:.1f}s CPU" if cpu is not None else "")
    return f"timing ({summ['processes']} process(es)): " + ", ".join(parts) + tail


def timed(name: str, model=None):
    """Decorator: time every call as phase `name`; the model is ``model(*args, **kwargs)`` when given,
    else the first argument when it is a string (a model name) or its `.name` (a LoadedModel) - one
    line at a library call site."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if model is not None:
                who = model(*args, **kwargs)
            else:
                first = args[0] if args else kwargs.get("model_name", kwargs.get("loaded"))
                who = first if isinstance(first, str) else getattr(first, "name", None)
            with phase(name, model=who if isinstance(who, str) else None):
                return fn(*args, **kwargs)
        return inner
    return wrap
