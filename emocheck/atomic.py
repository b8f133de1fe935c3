"""Atomic writes: a file is written to a temporary name beside it (the writer's pid in the name, so the
first write into a folder can remove those of killed writers), flushed, fsynced and renamed over the
target, so a reader never sees half a file. The checksummed artefacts of emocheck.storage and the
timing files of emocheck.timing are written through these; storage re-exports them.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from emocheck.filelocks import clean_stale, dir_mode, file_mode


def _tmp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def make_dirs(path: Path) -> None:
    path.mkdir(mode=dir_mode(), parents=True, exist_ok=True)


def _atomic_replace(path: Path, write: Callable) -> None:
    path = Path(path)
    make_dirs(path.parent)
    clean_stale(path.parent)
    tmp = _tmp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    _atomic_replace(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def json_default(obj: Any):
    """JSON for the values metadata holds besides plain types: numpy scalars and arrays, paths."""
    # numpy scalars and arrays appear in metadata often enough to convert them here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
