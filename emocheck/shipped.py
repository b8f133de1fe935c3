"""Files the project ships are checked against digests recorded in the repository.

The evaluator heads (data/evaluators/heads/*.safetensors), the prompt tables (data/*.csv) and the
evaluators' data (data/evaluators/*.csv, *.json) decide scores and verdicts, and a flipped bit in one
of them would change numbers silently. Their sha256 digests are recorded in `data/SHIPPED.sha256`
(the format of `sha256sum`, so `cd data && sha256sum -c SHIPPED.sha256` checks them too); every read
of such a file goes through `verify_shipped(path)`, which raises one ShippedFileError naming the file
and how to restore it. A file that no digest list names (a user's own dataset, a copy elsewhere
without the list) is not a shipped file and is not checked here.

    python -m emocheck.shipped            # check every shipped file
    python -m emocheck.shipped --record   # record the digests anew (after changing a shipped file)
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from emocheck.errors import EmocheckError
from emocheck.storage import atomic_write_text, file_lock, sha256_bytes

DIGEST_LIST = "SHIPPED.sha256"
# What `--record` lists, relative to the data folder.
SHIPPED_PATTERNS = ("*.csv", "evaluators/*.csv", "evaluators/*.json", "evaluators/heads/*.safetensors")
# How far above a file its digest list may sit (data/evaluators/heads/x -> data/).
_MAX_DEPTH = 3


class ShippedFileError(EmocheckError):
    """A file shipped with emocheck is damaged or missing; the message says how to restore it."""


def project_data_dir() -> Path:
    """The repository's data/ folder (where the digest list lives)."""
    return Path(__file__).resolve().parent.parent / "data"


def _read_list(list_path: Path) -> dict[str, str]:
    digests = {}
    for line in list_path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(None, 1)
            digests[rel.strip().lstrip("*")] = digest.lower()
    return digests


def _list_for(path: Path) -> tuple[Path, dict[str, str]] | None:
    """(folder of the digest list, its entries) of the nearest list above `path`, if any."""
    folder = path.parent
    for _ in range(_MAX_DEPTH):
        candidate = folder / DIGEST_LIST
        if candidate.is_file():
            try:
                return folder, _read_list(candidate)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise ShippedFileError(
                    f"the digest list {candidate} is unreadable ({exc}); restore it from a fresh checkout: "
                    f"git checkout -- {_display(candidate)}") from None
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _display(path: Path) -> str:
    """The path as a checkout names it (data/...), else as given."""
    resolved = path.resolve()
    root = project_data_dir().parent
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _restore_hint(path: Path) -> str:
    shown = _display(path)
    return (f"restore it from a fresh checkout of emocheck (`git checkout -- {shown}` in the repository, or "
            f"reinstall the package); if you changed it on purpose, record its new digest with "
            f"`python -m emocheck.shipped --record`")


def verify_shipped(path: str | os.PathLike) -> bytes | None:
    """Check a shipped file against its recorded digest; returns its bytes when it is one (so the
    caller can parse exactly what was checked), None when no digest list names it. Raises
    ShippedFileError when it is missing, damaged or edited."""
    path = Path(path)
    found = _list_for(path.resolve()) if path.exists() or path.parent.exists() else None
    if found is None:
        return None
    root, digests = found
    rel = path.resolve().relative_to(root).as_posix()
    if rel not in digests:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ShippedFileError(f"{_display(path)} cannot be read ({exc.strerror or exc}); {_restore_hint(path)}") from None
    if sha256_bytes(data) != digests[rel]:
        raise ShippedFileError(
            f"{_display(path)} is damaged: its sha256 does not match the digest recorded in "
            f"{_display(root / DIGEST_LIST)}; {_restore_hint(path)}")
    return data


def shipped_files(data_dir: Path | None = None) -> list[Path]:
    d = Path(data_dir) if data_dir is not None else project_data_dir()
    return sorted({p for pattern in SHIPPED_PATTERNS for p in d.glob(pattern) if p.is_file()})


def record_digests(data_dir: Path | None = None, paths=None) -> Path:
    """Write the digest list of `data_dir` (default the repository's data/): every shipped file, or
    update only `paths` (what `python -m emocheck.evaluators.train` just rewrote)."""
    d = Path(data_dir) if data_dir is not None else project_data_dir()
    list_path = d / DIGEST_LIST
    with file_lock(list_path):
        digests = _read_list(list_path) if (paths is not None and list_path.is_file()) else {}
        for p in (shipped_files(d) if paths is None else [Path(x) for x in paths]):
            digests[p.resolve().relative_to(d.resolve()).as_posix()] = sha256_bytes(p.read_bytes())
        lines = [f"{digest}  {rel}" for rel, digest in sorted(digests.items())]
        atomic_write_text(list_path, "\n".join(lines) + "\n")
    return list_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emocheck.shipped", description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="record the digests of the shipped files anew")
    ap.add_argument("--data-dir", default=None, help="the data folder (default: the repository's data/)")
    args = ap.parse_args(argv)
    d = Path(args.data_dir) if args.data_dir else project_data_dir()
    if args.record:
        print(f"recorded {len(shipped_files(d))} digests in {record_digests(d)}")
        return 0
    bad = 0
    for p in shipped_files(d):
        try:
            if verify_shipped(p) is None:
                print(f"not listed: {_display(p)}")
                bad += 1
        except ShippedFileError as exc:
            print(exc)
            bad += 1
    print(f"{len(shipped_files(d)) - bad} of {len(shipped_files(d))} shipped files match their digests")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
