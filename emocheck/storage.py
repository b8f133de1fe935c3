"""The one rule for every file emocheck writes: atomic, checksummed, verified on read, locked, rebuilt.

Why: pytest-xdist workers and parallel sessions share `results/` and the model cache; a reader must
never see half a file, never trust a damaged one, and never get a mix of two writers' files.

    write_artifact(path, payload_bytes, meta)      # atomic; sidecar JSON = meta + sha256 + size, sealed
    read_artifact(path, key=...) -> (bytes, meta) | None   # None = missing/stale/damaged: rebuild

The sidecar says what the payload means (prompt ids, layers, emotions, the key), so it is as much a
part of the artefact as the tensors: the whole record is sealed by `record_sha256`, the sha256 of its
canonical JSON (`seal_record`). An edited or damaged sidecar fails the seal and the artefact is rebuilt
exactly like a damaged payload; a sidecar without a seal (an older emocheck's) is rebuilt, never read.

`read_artifact` reads the payload ONCE into memory, checks it against the sidecar's checksum and hands
out exactly those bytes (decoders parse them; nothing reopens the file after the check: the bug behind
wrong vectors under contention). Both take the artefact's lock, so a reader never interleaves with a
writer of the same artefact. Typed helpers (`save_tensors_artifact`, `write_table_artifact`, ...) wrap
them for safetensors and Parquet/CSV; phases 4, 6 and 8 use the same calls.

Temporary files carry the writer's pid (`.<name>.<pid>.<rand>.tmp`) so that the first write into a
folder can remove those of killed writers (emocheck.filelocks: locks, modes, cleanup).
Nothing here uses pickle: tensors go to safetensors, tables to CSV/Parquet, metadata to JSON.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

# Atomic writes (atomic), locks, modes and cleanup (filelocks) live below; re-exported because every
# writer imports them from here.
from emocheck.atomic import (atomic_write_bytes, atomic_write_json, atomic_write_text, json_bytes,  # noqa: F401
                             json_default, make_dirs)
from emocheck.filelocks import (RUN_STARTED, clean_stale, current_umask, dir_mode, file_lock,  # noqa: F401
                                file_mode)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- tables, tensors, figures


def dataframe_bytes(df, suffix: str) -> bytes:
    if suffix == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    if suffix == ".csv":
        return df.to_csv(index=False).encode("utf-8")
    raise ValueError(f"unsupported table format {suffix!r}; use .csv or .parquet")


def atomic_write_dataframe(path: str | os.PathLike, df) -> None:
    """Write a pandas DataFrame as CSV or Parquet (by suffix), atomically (no checksum: use
    write_table_artifact for anything that is read back)."""
    path = Path(path)
    atomic_write_bytes(path, dataframe_bytes(df, path.suffix))


def tensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def atomic_save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a dict of torch tensors as safetensors, atomically."""
    atomic_write_bytes(path, tensors_bytes(tensors, metadata))


def atomic_save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically and close it (figures are never left open). Timed as
    phase ``figures`` (rendering happens here, in savefig; building the axes before it is not counted)."""
    import matplotlib.pyplot as plt

    from emocheck import timing

    with timing.phase("figures"):
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=dpi)
        finally:
            plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------------- hashes


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fast_file_digest(path: str | os.PathLike, chunk: int = 8 << 20) -> str:
    """xxh3_128 of a whole file: not cryptographic, but any accidental damage (a flipped bit, a block
    overwritten in place with size and mtime kept) changes it, fast enough to check a model on every
    load (benchmarks/bench_model_verify.py). The file is hashed through a read-only memory map (no copy
    into a buffer: about 40% faster than chunked reads from the page cache); chunked reads where a file
    cannot be mapped."""
    import mmap

    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return h.hexdigest()
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                h.update(mapped)
            return h.hexdigest()
        except (OSError, ValueError):
            pass
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := fh.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order and process."""
    text = json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# ----------------------------------------------------------------------------------------- verified artefacts


RECORD_CHECKSUM = "record_sha256"


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default).encode("utf-8")


def seal_record(record: dict) -> dict:
    """`record` as plain JSON data plus `record_sha256`, the sha256 of its canonical JSON: every field
    of the record (ids, layers, emotions, the key, the payload's checksum) is then vouched for."""
    plain = json.loads(_canonical_json({k: v for k, v in record.items() if k != RECORD_CHECKSUM}))
    return {**plain, RECORD_CHECKSUM: sha256_bytes(_canonical_json(plain))}


def record_is_sealed(record: Any) -> bool:
    """True when `record` (read back from JSON) carries a seal that matches every other field."""
    if not isinstance(record, dict) or not isinstance(record.get(RECORD_CHECKSUM), str):
        return False
    rest = {k: v for k, v in record.items() if k != RECORD_CHECKSUM}
    return sha256_bytes(_canonical_json(rest)) == record[RECORD_CHECKSUM]


def atomic_write_sealed_json(path: str | os.PathLike, record: dict) -> dict:
    """A JSON record that vouches for itself (`seal_record`), written atomically; returns it."""
    sealed = seal_record(record)
    atomic_write_bytes(path, json_bytes(sealed))
    return sealed


def read_sealed_json(path: str | os.PathLike, what: str = "record") -> dict | None:
    """The record at `path` when its seal matches; None when missing, unreadable, unsealed or edited
    (logged, except missing): the caller treats it as absent."""
    path = Path(path)
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s %s is unreadable (%s); not trusted", what, path.name, exc)
        return None
    if not record_is_sealed(record):
        log.warning("%s %s is not sealed or was edited; not trusted", what, path.name)
        return None
    return record


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where an artefact's checksum and metadata live by default: `<stem>.json` beside it."""
    return Path(path).with_suffix(".json")


def write_artifact(path: str | os.PathLike, payload: bytes, meta: dict | None = None, *,
                   meta_path: str | os.PathLike | None = None) -> dict:
    """Write `payload` atomically, then the sealed sidecar JSON that vouches for it (meta + sha256 +
    size + record_sha256), both under the artefact's lock. A crash between the two leaves a payload the
    old sidecar does not vouch for: the next read rebuilds it. Returns the sidecar's content."""
    path = Path(path)
    meta_path = Path(meta_path) if meta_path is not None else sidecar_path(path)
    record = seal_record({**(meta or {}), "sha256": sha256_bytes(payload), "size": len(payload)})
    with file_lock(path):
        atomic_write_bytes(path, payload)
        atomic_write_bytes(meta_path, json_bytes(record))
    return record


def read_artifact(path: str | os.PathLike, *, key: str | None = None, meta_path: str | os.PathLike | None = None,
                  what: str = "artefact") -> tuple[bytes, dict] | None:
    """The verified payload and its metadata, or None when missing, stale (`key` differs from the
    sidecar's "key") or damaged (logged): the caller rebuilds. Never raises for a bad file."""
    found = _read_verified(path, key=key, meta_path=meta_path, what=what)
    return None if found is None else (bytes(found[0]), found[1])


def _read_verified(path, *, key=None, meta_path=None, what="artefact") -> tuple[bytearray, dict] | None:
    path = Path(path)
    meta_path = Path(meta_path) if meta_path is not None else sidecar_path(path)
    with file_lock(path):
        try:
            meta = json.loads(meta_path.read_bytes())
            payload = _read_into_bytearray(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s %s is unreadable (%s); rebuilding", what, path.name, exc)
            return None
    if not isinstance(meta, dict) or "sha256" not in meta:
        log.warning("%s %s has no checksum record; rebuilding", what, path.name)
        return None
    if not record_is_sealed(meta):
        log.warning("%s %s: its record (%s) was edited, damaged or written by an older emocheck; rebuilding",
                    what, path.name, meta_path.name)
        return None
    if key is not None and meta.get("key") != key:
        return None
    if ("size" in meta and len(payload) != meta["size"]) or sha256_bytes(payload) != meta["sha256"]:
        log.warning("%s %s does not match its checksum; rebuilding", what, path.name)
        return None
    return payload, meta


def _read_into_bytearray(path: Path) -> bytearray:
    """The whole file in one writable buffer (one copy; tensors can then view it without another)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = fh.readinto(view[got:])
            if not n:
                break
            got += n
    return buf if got == size else buf[:got]


_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _tensors_from_buffer(buf: bytearray) -> dict:
    """Parse safetensors bytes without copying the data: each tensor views `buf` (the format is an
    8-byte little-endian header length, a JSON header of dtype/shape/offsets, then the raw data)."""
    import torch

    n = int.from_bytes(buf[:8], "little")
    header = json.loads(bytes(buf[8:8 + n]))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = getattr(torch, _ST_DTYPES[info["dtype"]])
        start, end = info["data_offsets"]
        shape = info["shape"]
        if end == start:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            out[name] = torch.frombuffer(buf, dtype=dtype, count=(end - start) // dtype.itemsize,
                                         offset=base + start).reshape(shape)
    return out


def save_tensors_artifact(path, tensors: dict, meta: dict | None = None, *, meta_path=None) -> dict:
    return write_artifact(path, tensors_bytes(tensors), meta, meta_path=meta_path)


def load_tensors_artifact(path, *, key: str | None = None, meta_path=None, what: str = "tensor file"):
    """(tensors, meta) from a verified safetensors artefact, or None (rebuild)."""
    found = _read_verified(path, key=key, meta_path=meta_path, what=what)   # tensors view this buffer
    if found is None:
        return None
    payload, meta = found
    try:
        return _tensors_from_buffer(payload), meta
    except Exception as exc:  # checksum matched but not safetensors (written by a buggy writer)
        log.warning("%s %s is not a safetensors file (%s); rebuilding", what, Path(path).name, exc)
        return None


def write_table_artifact(path, df, meta: dict | None = None, *, meta_path=None) -> dict:
    """A DataFrame as Parquet or CSV (by suffix), written by the one rule."""
    path = Path(path)
    return write_artifact(path, dataframe_bytes(df, path.suffix), meta, meta_path=meta_path)


def read_table_artifact(path, *, key: str | None = None, meta_path=None, what: str = "table"):
    """The verified DataFrame, or None (missing, stale or damaged: rebuild)."""
    import pandas as pd

    path = Path(path)
    found = read_artifact(path, key=key, meta_path=meta_path, what=what)
    if found is None:
        return None
    payload, _ = found
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(io.BytesIO(payload))
        return pd.read_csv(io.BytesIO(payload))
    except Exception as exc:
        log.warning("%s %s cannot be parsed (%s); rebuilding", what, path.name, exc)
        return None


def cached_artifact(path, key: str, build: Callable[[], bytes], meta: dict | None = None, *,
                    meta_path=None) -> tuple[bytes, dict]:
    """Get-or-build under one lock: concurrent callers build `key` once; a damaged file is rebuilt."""
    with file_lock(path):
        found = read_artifact(path, key=key, meta_path=meta_path)
        if found is not None:
            return found
        payload = build()
        return payload, write_artifact(path, payload, {**(meta or {}), "key": key}, meta_path=meta_path)


# ----------------------------------------------------------------------------------------- folder manifests


MANIFEST = "manifest.json"


def write_manifest(folder: str | os.PathLike, files: list[str | os.PathLike], meta: dict | None = None) -> Path:
    """Record the sha256 and size of `files` (paths inside `folder`) in `folder/manifest.json`, for
    folders of many human-facing files (statistics) where a sidecar per file would be clutter."""
    folder = Path(folder)
    entries = {}
    for f in files:
        p = Path(f)
        rel = p.relative_to(folder).as_posix() if p.is_absolute() else p.as_posix()
        data = (folder / rel).read_bytes()
        entries[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
    path = folder / MANIFEST
    atomic_write_sealed_json(path, {**(meta or {}), "files": entries})
    return path


def manifest_files(folder: str | os.PathLike) -> set[str] | None:
    """The files the folder's manifest says emocheck wrote there, or None when there is no manifest
    emocheck can vouch for: missing, unreadable, or sealed but edited (an older emocheck's unsealed
    manifest is taken as written)."""
    try:
        record = json.loads((Path(folder) / MANIFEST).read_bytes())
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict) or (RECORD_CHECKSUM in record and not record_is_sealed(record)):
        return None
    return {str(rel) for rel in files}


def _own_file(folder: Path, rel: str) -> Path | None:
    """folder/rel when it is a plain file inside `folder`, reached without a symbolic link; else None."""
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None
    p = folder / rel
    try:
        if p.is_symlink() or not p.is_file() or p.resolve() != folder.resolve() / rel:
            return None
    except OSError:
        return None
    return p


def prune_by_manifest(folder: str | os.PathLike, previous: set[str] | None, keep: set[str],
                      started: float) -> tuple[list[Path], list[str]]:
    """Remove what an earlier session wrote and this one did not: the files the `previous` manifest
    lists (read before this session's was written), not in `keep`, last written before `started`.
    Nothing else is touched: returns (removed, foreign), foreign being the files there that emocheck
    did not write (a user's notes), left intact. Sub-folders emptied by a removal go too."""
    folder = Path(folder)
    removed = []
    for rel in sorted(previous or ()):
        p = _own_file(folder, rel)
        if p is None or rel in keep or rel == MANIFEST:
            continue
        try:
            if p.stat().st_mtime < started:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    for p in removed:
        for parent in p.parents:
            if parent == folder or folder not in parent.parents:
                break
            with contextlib.suppress(OSError):
                parent.rmdir()          # only when empty
    own = set(previous or ()) | set(keep) | {MANIFEST}
    foreign = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if (p.is_file() or p.is_symlink()) and p.relative_to(folder).as_posix() not in own
                     and not p.name.endswith((".lock", ".tmp")))
    return removed, foreign


def verify_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """{file: problem} for every file the manifest lists that is missing or damaged (empty = all good);
    {MANIFEST: problem} when there is no readable manifest."""
    folder = Path(folder)
    try:
        record = json.loads((folder / MANIFEST).read_bytes())
        entries = record["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {MANIFEST: f"missing or unreadable ({exc})"}
    if not record_is_sealed(record):
        return {MANIFEST: "not sealed or edited"}
    problems = {}
    for rel, rec in entries.items():
        try:
            data = (folder / rel).read_bytes()
        except OSError:
            problems[rel] = "missing"
            continue
        if len(data) != rec.get("size") or sha256_bytes(data) != rec.get("sha256"):
            problems[rel] = "does not match its checksum"
    return problems


def read_verified(folder: str | os.PathLike, rel: str) -> bytes | None:
    """One file of a manifest folder, verified; None when missing or damaged."""
    folder = Path(folder)
    try:
        record = json.loads((folder / MANIFEST).read_bytes())
        rec = record["files"][rel]
        data = (folder / rel).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not record_is_sealed(record):
        return None
    if len(data) != rec.get("size") or sha256_bytes(data) != rec.get("sha256"):
        return None
    return data
