"""What emocheck keeps on disk, and how to list, size, verify and clear it (``emocheck cache``).

Two roots hold everything emocheck writes and reuses:

* the results root (``$EMOCHECK_RESULTS_DIR``, else ``./results``), one folder per profile:
  ``activations/<model>/`` (extracted activations), ``emotion_vectors/`` and ``emotion_subspaces/``
  (``<model>_...safetensors``), ``patching/residual/<model>/`` and ``patching/heads/<model>/`` (steered
  generations and their scores), ``head_scores/<model>/``, ``circuits/<model>/``,
  ``alignment/<model>_vs_<model>/``, ``statistics/`` (the last session's report) and ``timing/``;
* the model cache (``$EMOCHECK_MODEL_CACHE``, else ``~/.cache/emocheck/models``): one de-quantised copy
  per GGUF model, ``<model>-<gguf sha256[:16]>-v<N>/``, and ``checksums.json`` (GGUF checksums).

The evaluators' score caches live in memory only (``emocheck.evaluators.SCORE_CACHE``); their heads
under ``data/evaluators/`` are data shipped with the repository, not a cache.

Verification re-reads every checksummed artefact the way emocheck's readers do: a file with a sidecar
through ``storage.read_artifact`` (size and sha256 from the one read), the statistics folder through
its manifest, an alignment folder through the checksums its ``summary.json`` records, and a model copy
through ``models.registry``'s full re-hash. Clearing takes the lock each writer takes, removes only
files emocheck writes (by folder and name), and refuses any path that resolves outside the two roots.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from emocheck.errors import ConfigError
from emocheck.filelocks import clean_stale, file_lock
from emocheck.profiles import safe_part

# results/<profile>/<kind>/...: the folders emocheck's writers create (grep results_dir( in emocheck/).
RESULT_KINDS = {
    "activations": "extracted activations",
    "emotion_vectors": "emotion vectors",
    "emotion_subspaces": "emotion subspaces",
    "patching": "steered generations and scores",
    "head_scores": "attention-head scores",
    "circuits": "circuits",
    "alignment": "cross-model alignment",
    "statistics": "last session's statistics",
    "timing": "timing files",
}
MODEL_COPY = "model copy"
# Suffixes of the files emocheck writes under those folders; anything else is left alone.
OWN_SUFFIXES = (".safetensors", ".json", ".parquet", ".csv", ".png", ".md", ".html")
_MODEL_DIR = re.compile(r"^(?P<name>.+)-[0-9a-f]{16}-v\d+$")


@dataclass
class Entry:
    """One cached thing: an artefact (payload + sidecar), a folder of files, or a model copy."""

    root: Path
    profile: str | None          # None for the model cache
    kind: str
    model: str | None
    paths: list[Path]            # every file (or the copy's folder) it consists of
    payload: Path | None = None  # the file a sidecar vouches for
    sidecar: Path | None = None
    size: int = 0

    @property
    def label(self) -> str:
        return str(self.payload or self.paths[0])


@dataclass
class Problem:
    path: Path
    reason: str


@dataclass
class VerifyReport:
    checked: int = 0
    unchecked: int = 0           # files with no checksum (figures, CSV summaries)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def results_root(path: str | os.PathLike | None = None) -> Path:
    from emocheck.profiles import results_root as default

    return Path(path).expanduser().resolve() if path else default()


def model_cache_root(path: str | os.PathLike | None = None) -> Path:
    from emocheck.models.registry import model_cache_root as default

    return Path(path).expanduser().resolve() if path else default().expanduser().resolve()


def _size(p: Path) -> int:
    try:
        if p.is_dir() and not p.is_symlink():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        return p.stat().st_size
    except OSError:
        return 0


def _is_sidecar(p: Path) -> dict | None:
    if p.suffix != ".json":
        return None
    try:
        meta = json.loads(p.read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "sha256" in meta and "size" in meta else None


def _payload_of(sidecar: Path) -> Path | None:
    if sidecar.name.endswith(".sha256.json"):   # circuits: circuit_<e>.json's sidecar
        p = sidecar.with_name(sidecar.name[: -len(".sha256.json")] + ".json")
        return p if p.exists() else None
    found = [q for q in sidecar.parent.glob(sidecar.stem + ".*") if q != sidecar and q.suffix in OWN_SUFFIXES
             and q.stem == sidecar.stem]
    return found[0] if len(found) == 1 else None


def _model_of(kind: str, rel: tuple[str, ...]) -> str | None:
    """The model a results file belongs to, from where its writer puts it."""
    if kind in ("activations", "head_scores", "circuits") and len(rel) > 1:
        return rel[0]
    if kind == "patching" and len(rel) > 2 and rel[0] in ("residual", "heads"):
        return rel[1]
    if kind == "alignment" and len(rel) > 1:
        return rel[0]                   # "<reference>_vs_<other>": matched by either name
    if kind in ("emotion_vectors", "emotion_subspaces"):
        name = rel[-1]
        for marker in ("_vectors_token_based", "_subspaces"):
            if marker in name:
                return name.split(marker, 1)[0]
    return None


def model_matches(entry_model: str | None, model: str, kind: str) -> bool:
    if entry_model is None:
        return False
    want = safe_part(model)
    if kind == "alignment":
        return want in entry_model.split("_vs_")
    if kind in ("emotion_vectors", "emotion_subspaces"):   # "<model>" or "<model>_<dataset>-<hash>"
        return entry_model == want or entry_model.startswith(want + "_")
    return entry_model == want


def _own_file(p: Path) -> bool:
    return p.is_file() and p.suffix in OWN_SUFFIXES and not p.name.startswith(".")


def _walk_files(folder: Path) -> list[Path]:
    """Every file under `folder`, following linked folders (a shared activation cache may be one) once."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        out += [Path(dirpath, f) for f in filenames]
    return sorted(out)


def result_entries(root: Path, profile: str | None = None) -> list[Entry]:
    """Every cached thing under the results root (one profile or all)."""
    entries: list[Entry] = []
    if not root.is_dir():
        return entries
    profiles = [root / safe_part(profile)] if profile else sorted(p for p in root.iterdir() if p.is_dir())
    for pdir in profiles:
        for kind in RESULT_KINDS:
            kdir = pdir / kind
            if not kdir.is_dir():
                continue
            files = [p for p in _walk_files(kdir) if _own_file(p)]
            claimed: set[Path] = set()
            for f in files:
                if _is_sidecar(f) is None:
                    continue
                payload = _payload_of(f)
                if payload is None:
                    continue
                rel = payload.relative_to(kdir).parts
                entries.append(Entry(root, pdir.name, kind, _model_of(kind, rel), [payload, f], payload, f,
                                     _size(payload) + _size(f)))
                claimed.update((payload, f))
            for f in files:
                if f not in claimed:
                    rel = f.relative_to(kdir).parts
                    entries.append(Entry(root, pdir.name, kind, _model_of(kind, rel), [f], size=_size(f)))
    return entries


def model_entries(root: Path) -> list[Entry]:
    entries = []
    if not root.is_dir():
        return entries
    for p in sorted(root.iterdir()):
        m = _MODEL_DIR.match(p.name)
        if p.is_dir() and not p.is_symlink() and m and not p.name.startswith("."):
            entries.append(Entry(root, None, MODEL_COPY, m.group("name"), [p], size=_size(p)))
    return entries


def list_entries(*, results: str | os.PathLike | None = None, model_cache: str | os.PathLike | None = None,
                 profile: str | None = None, model: str | None = None, include_models: bool = True) -> list[Entry]:
    """Cached things, optionally of one profile and/or one model (the model cache has no profile)."""
    out = result_entries(results_root(results), profile)
    if include_models and profile is None:
        out += model_entries(model_cache_root(model_cache))
    if model is not None:
        out = [e for e in out if (e.kind == MODEL_COPY and e.model == safe_part(model))
               or (e.kind != MODEL_COPY and model_matches(e.model, model, e.kind))]
    return out


def summarise(entries: list[Entry]) -> list[dict]:
    """One row per (root, profile, kind, model): files and bytes, sorted."""
    rows: dict[tuple, dict] = {}
    for e in entries:
        key = (str(e.root), e.profile or "-", e.kind, e.model or "-")
        row = rows.setdefault(key, {"root": key[0], "profile": key[1], "kind": key[2], "model": key[3],
                                    "files": 0, "bytes": 0})
        row["files"] += sum(1 for p in e.paths for q in ([p] if p.is_file() else p.rglob("*")) if q.is_file())
        row["bytes"] += e.size
    return [rows[k] for k in sorted(rows)]


def human_bytes(n: int) -> str:
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------------------------- verify


def _verify_alignment(folder: Path, report: VerifyReport, seen: set[Path]) -> None:
    from emocheck.storage import sha256_file

    try:
        recorded = json.loads((folder / "summary.json").read_bytes()).get("files", {})
    except (OSError, ValueError, AttributeError):
        report.problems.append(Problem(folder / "summary.json", "missing or unreadable"))
        return
    seen.add(folder / "summary.json")
    for name, digest in sorted(recorded.items()):
        p = folder / name
        seen.add(p)
        report.checked += 1
        if not p.is_file():
            report.problems.append(Problem(p, "missing (summary.json records it)"))
        elif sha256_file(p) != digest:
            report.problems.append(Problem(p, "does not match the checksum summary.json records"))


def verify(entries: list[Entry]) -> VerifyReport:
    """Re-check every entry the way emocheck's readers do; nothing is changed or removed."""
    from emocheck.models.registry import verify_dequantised_copy
    from emocheck.storage import MANIFEST, read_artifact, verify_manifest

    report = VerifyReport()
    seen: set[Path] = set()
    folders = sorted({e.paths[0].parent for e in entries if e.kind == "statistics" and e.paths[0].name == MANIFEST})
    for folder in folders:
        problems = verify_manifest(folder)
        try:
            listed = json.loads((folder / MANIFEST).read_bytes())["files"]
        except (OSError, ValueError, KeyError):
            listed = {}
        report.checked += len(listed)
        seen.add(folder / MANIFEST)
        seen.update(folder / rel for rel in listed)
        report.problems += [Problem(folder / rel, why) for rel, why in sorted(problems.items())]
    for folder in sorted({e.paths[0].parent for e in entries if e.kind == "alignment"
                          and e.paths[0].name == "summary.json"}):
        _verify_alignment(folder, report, seen)
    for e in entries:
        if e.kind == MODEL_COPY:
            with file_lock(e.paths[0]):   # the lock the loader holds while it checks or rebuilds a copy
                ok = verify_dequantised_copy(e.paths[0])
            report.checked += 1
            if not ok:
                report.problems.append(Problem(e.paths[0], "a file is missing or does not match the copy's "
                                                           "manifest (the next load rebuilds it)"))
        elif e.sidecar is not None:
            report.checked += 1
            if read_artifact(e.payload, meta_path=e.sidecar, what=e.kind) is None:
                report.problems.append(Problem(e.payload, f"does not match its checksum file {e.sidecar.name} "
                                                          "(the next reader rebuilds it)"))
        else:
            report.unchecked += sum(1 for p in e.paths if p not in seen)
    return report


# ----------------------------------------------------------------------------------------- clear


def _check_root(root: Path, what: str) -> Path:
    root = root.resolve()
    home = Path.home().resolve()
    if root == Path(root.anchor) or root == home or root in home.parents:
        raise ConfigError(f"refusing to clear: the {what} root is {root}; point it at emocheck's own folder "
                          "(--results DIR / EMOCHECK_RESULTS_DIR, --model-cache DIR / EMOCHECK_MODEL_CACHE)")
    return root


def _inside(path: Path, root: Path) -> bool:
    try:
        real = Path(os.path.realpath(path))
    except OSError:
        return False
    return real != root and root in real.parents


@dataclass
class ClearReport:
    removed: list[Path] = field(default_factory=list)
    bytes: int = 0
    refused: list[Problem] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)   # files in those folders that emocheck did not write


def clear(entries: list[Entry], *, dry_run: bool = False) -> ClearReport:
    """Remove the entries' files under the writers' locks; refuse anything resolving outside its root.

    An artefact is removed under its payload's lock (``storage.write_artifact`` / ``cached_artifact``
    hold it while writing, ``read_artifact`` while reading); vectors and subspaces under the vectors
    file's lock (``build_representations`` writes the pair under it); the statistics folder under
    ``<profile>/.statistics`` and an alignment folder under its ``summary.json`` lock (their writers'
    locks); a model copy under its folder's lock (``load_model`` holds it while checking or rebuilding
    the copy)."""
    report = ClearReport()
    roots: dict[Path, Path] = {}
    for e in entries:
        what = "model cache" if e.kind == MODEL_COPY else "results"
        roots.setdefault(e.root, _check_root(e.root, what))
    for e in entries:
        root = roots[e.root]
        outside = [p for p in e.paths if not _inside(p, root)]
        if outside:
            report.refused += [Problem(p, f"resolves outside {root} (a link to another folder?); not removed")
                               for p in outside]
            continue
        if e.kind == MODEL_COPY:
            lock_target = e.paths[0]
        elif e.kind == "statistics":     # the session writes and prunes the folder under this lock
            lock_target = e.root / e.profile / ".statistics"
        elif e.kind == "alignment":      # run_alignment writes a folder under its summary's lock
            lock_target = e.paths[0].parent / "summary.json"
        elif e.kind == "emotion_subspaces":
            name = e.paths[0].name.replace("_subspaces.safetensors", "_vectors_token_based.safetensors")
            lock_target = e.paths[0].parent.parent / "emotion_vectors" / name
        else:
            lock_target = e.payload or e.paths[0]
        if dry_run:
            report.removed += e.paths
            report.bytes += e.size
            continue
        with file_lock(lock_target):
            for p in e.paths:
                try:
                    if p.is_dir():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
                except FileNotFoundError:
                    continue
                report.removed.append(p)
            report.bytes += e.size
    if not dry_run:
        _tidy({p.parent for p in report.removed}, roots.values())
    return report


def _tidy(folders: set[Path], roots) -> None:
    """Remove stale temporaries and unheld lock files, then empty folders, up to (not including) the roots."""
    roots = set(roots)
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        p = folder
        while p not in roots and any(r in p.parents for r in roots):
            clean_stale(p, force=True)
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent


def foreign_files(root: Path, profile: str | None = None) -> list[Path]:
    """Files in emocheck's result folders that emocheck did not write (left alone by clear)."""
    out = []
    profiles = [root / safe_part(profile)] if profile else (sorted(p for p in root.iterdir() if p.is_dir())
                                                            if root.is_dir() else [])
    for pdir in profiles:
        for kind in RESULT_KINDS:
            kdir = pdir / kind
            if kdir.is_dir():
                out += [p for p in _walk_files(kdir) if not _own_file(p) and not p.name.endswith(".lock")
                        and not (p.name.startswith(".") and p.name.endswith(".tmp"))]
    return sorted(out)
