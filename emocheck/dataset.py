"""The emotion prompt dataset and the neutral generation prompts (phase 1).

`data/emotion_prompts.csv`: one row per prompt, shared by every model, with columns
    id, emotion, text, trigger, genre, formality, explicitness, topic
where `trigger` is the exact substring of `text` that carries the emotion (for neutral rows, the
main content phrase at a comparable position). Adding an emotion is adding rows with a new
`emotion` value. `data/generation_prompts.csv` (id, text, genre, topic) holds neutral openings that
phase 5 continues by generation. See data/DATA_CARD.md for how they were made and their limits.

A user's own dataset (`--emocheck-dataset PATH`, `$EMOCHECK_DATASET`, or a profile's `dataset`) is a
CSV or JSONL (one JSON object per line; `.jsonl` / `.ndjson`) with at least `text` and `emotion`, any
set of emotions that includes `neutral`. Optional: `id` (default: a stable hash of the text),
`trigger` (default: none, and the `trigger_last` position rule falls back to the last token, with one
warning; column `has_trigger` says which rows have one), `explicitness`, `genre`, `formality`,
`topic` (default ''), and any other metadata column, kept as text. Generation prompts likewise
(`--emocheck-generation-prompts`): at least `text`.

The loaders validate every row and name the file, line and problem of the first bad row.
Splits are deterministic: a prompt's split depends only on its id and the seed, so adding rows never
moves existing prompts between train and held-out. `dataset_hash` is the content hash that every
cache key built from a dataset carries, so two datasets never share a cache entry.
"""
from __future__ import annotations

import csv
import io
import hashlib
import json
import math
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from .errors import DatasetError

EMOTION_COLUMNS = ("id", "emotion", "text", "trigger", "genre", "formality", "explicitness", "topic")
GENERATION_COLUMNS = ("id", "text", "genre", "topic")
EMOTION_REQUIRED = ("text", "emotion")
GENERATION_REQUIRED = ("text",)
NEUTRAL = "neutral"
ENV_DATASET = "EMOCHECK_DATASET"
ENV_GENERATION_PROMPTS = "EMOCHECK_GENERATION_PROMPTS"
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class MissingTriggerWarning(UserWarning):
    """A dataset without triggers: `trigger_last` reads the last token instead."""
_EMOTION_RE = re.compile(r"^[a-z][a-z_]*$")


def data_dir() -> Path:
    """$EMOCHECK_DATA_DIR, else the repository's data/ (editable install), else ./data."""
    env = os.environ.get("EMOCHECK_DATA_DIR")
    if env:
        return Path(env)
    repo_data = Path(__file__).resolve().parent.parent / "data"
    return repo_data if repo_data.is_dir() else Path.cwd() / "data"


# csv's default field limit (128 KiB) turns one long text into a misleading "quoting" error; a field
# this large is still a plausible prompt or document, so the limit is raised to 64 MiB.
FIELD_SIZE_LIMIT = 64 << 20


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict]:
    if csv.field_size_limit() < FIELD_SIZE_LIMIT:
        csv.field_size_limit(FIELD_SIZE_LIMIT)
    if not path.is_file():
        raise DatasetError(f"data file {path} does not exist (give an existing CSV or JSONL file, set "
                           "EMOCHECK_DATA_DIR, or run from the repository root)")
    from emocheck.shipped import verify_shipped

    shipped = verify_shipped(path)      # the project's own tables: checked against their recorded digest
    if path.suffix.lower() in JSONL_SUFFIXES:
        return _read_jsonl(path, columns)
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name.
        with (io.StringIO(shipped.decode("utf-8-sig"), newline="") if shipped is not None
              else open(path, newline="", encoding="utf-8-sig")) as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path} is empty; it needs the header {','.join(columns)}")
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)}; expected {','.join(columns)}")
            rows = []
            for lineno, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise DatasetError(
                        f"{path} line {lineno}: {len(values)} fields where the header has {len(header)} "
                        "(an unquoted comma or quote in the text? quote fields that contain commas)"
                    )
                row = dict(zip(header, values))
                row["_line"] = lineno
                rows.append(row)
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc}); fix the quoting of that line") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from None
    if not rows:
        raise DatasetError(f"{path} has a header but no rows")
    return rows


def _read_jsonl(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """One JSON object per line; every value kept as text (numbers and booleans as written in JSON)."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                               "write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{path} line {lineno}: a JSON {type(obj).__name__}, not an object; "
                               'write one object per line like {"text": "...", "emotion": "..."}')
        missing = [c for c in columns if c not in obj]
        if missing:
            raise DatasetError(f"{path} line {lineno}: lacks key(s) {', '.join(missing)}; "
                               f"every line needs {', '.join(columns)}")
        row = {}
        for key, value in obj.items():
            if isinstance(value, (dict, list)):
                raise DatasetError(f"{path} line {lineno}: {key!r} is a JSON {type(value).__name__}; "
                                   "values must be text, numbers or booleans")
            row[str(key).strip()] = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
        row["_line"] = lineno
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path} has no rows")
    return rows


def text_id(text: str) -> str:
    """The id of a row that has none: a stable hash of its text (so it never depends on file order)."""
    return "t" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def _fill_defaults(rows: list[dict], columns: tuple[str, ...]) -> None:
    for row in rows:
        if not str(row.get("id", "")).strip():
            row["id"] = text_id(row["text"])
        for col in columns:
            row.setdefault(col, "")


def dataset_hash(df: pd.DataFrame) -> str:
    """Content hash of a loaded table (every column but the split, in row order)."""
    cols = sorted(c for c in df.columns if c != "split")
    payload = json.dumps([cols, df[cols].astype(str).to_numpy().tolist()], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def default_dataset_path() -> Path:
    """$EMOCHECK_DATASET, else the project's data/emotion_prompts.csv."""
    env = os.environ.get(ENV_DATASET)
    return Path(env) if env else data_dir() / "emotion_prompts.csv"


def default_generation_prompts_path() -> Path:
    env = os.environ.get(ENV_GENERATION_PROMPTS)
    return Path(env) if env else data_dir() / "generation_prompts.csv"


def is_project_dataset(path: str | os.PathLike | None) -> bool:
    """True when `path` (None = the default) is the project's own emotion_prompts.csv."""
    p = Path(path) if path else default_dataset_path()
    try:
        return p.resolve() == (data_dir() / "emotion_prompts.csv").resolve()
    except OSError:
        return False


# Control characters (NUL, escape, form feed, ...) are never part of a prompt: they come from a damaged
# or binary file and tokenize into something else than what the file seems to say. Tab and newlines are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# The fewest training prompts per emotion (and neutral) the vectors are computed from (a mean difference
# with its spread); `check_emotion_counts` refuses a dataset below it before any extraction.
MIN_TRAIN_PROMPTS = 2


def _check_common(path: Path, rows: list[dict]) -> None:
    seen_ids, seen_texts = {}, {}
    for row in rows:
        where = f"{path} line {row['_line']} (id {row.get('id') or '?'})"
        for col, value in row.items():
            bad = _CONTROL.search(value) if isinstance(value, str) else None
            if bad:
                raise DatasetError(f"{where}: column {col!r} contains the control character U+{ord(bad.group()):04X} "
                                   f"at character {bad.start() + 1}; remove it (prompts are plain text; a damaged "
                                   "or binary file?)")
        for col in ("id", "text"):
            if not row[col].strip():
                raise DatasetError(f"{where}: empty {col}")
        # text first: a row without an id gets a hash of its text, so a repeated text is the real problem
        key = row["text"].strip()
        if key in seen_texts:
            raise DatasetError(f"{where}: duplicate text, first on line {seen_texts[key]}")
        seen_texts[key] = row["_line"]
        if row["id"] in seen_ids:
            raise DatasetError(f"{where}: duplicate id, first used on line {seen_ids[row['id']]}")
        seen_ids[row["id"]] = row["_line"]


def load_emotion_prompts(path: str | os.PathLike | None = None, emotions: list[str] | None = None) -> pd.DataFrame:
    """Load and validate an emotion prompt table (CSV or JSONL); optionally keep only some emotions
    (neutral kept). Columns: EMOTION_COLUMNS, `has_trigger`, then any metadata columns of the file."""
    path = Path(path) if path else default_dataset_path()
    rows = _read_rows(path, EMOTION_REQUIRED)
    _fill_defaults(rows, EMOTION_COLUMNS)
    _check_common(path, rows)
    for row in rows:
        where = f"{path} line {row['_line']} (id {row['id']})"
        if not _EMOTION_RE.match(row["emotion"]):
            raise DatasetError(f"{where}: emotion {row['emotion']!r} must be a lowercase word like 'gratitude'")
        if row["trigger"] and row["trigger"] not in row["text"]:
            raise DatasetError(f"{where}: trigger {row['trigger']!r} is not a substring of the text {row['text']!r}")
    untriggered = [r for r in rows if not r["trigger"]]
    if untriggered and len(untriggered) < len(rows):
        r = untriggered[0]
        raise DatasetError(f"{path} line {r['_line']} (id {r['id']}): empty trigger while other rows have one; "
                           "give every row the substring of the text that carries the emotion, or none at all")
    for r in untriggered:
        # No trigger: the trigger span is the whole text, so `trigger_last` is the last token.
        r["trigger"], r["has_trigger"] = r["text"], False
    for r in rows:
        r.setdefault("has_trigger", True)
    if untriggered:
        warnings.warn(f"{path} has no trigger column: position rule 'trigger_last' reads the last token "
                      "(the same as 'last')", MissingTriggerWarning, stacklevel=2)
    extra = sorted({k for r in rows for k in r} - set(EMOTION_COLUMNS) - {"_line", "has_trigger"})
    for r in rows:
        for k in extra:
            r.setdefault(k, "")
    df = pd.DataFrame(rows, columns=[*EMOTION_COLUMNS, "has_trigger", *extra])
    df["has_trigger"] = df["has_trigger"].astype(bool)
    present = sorted(df["emotion"].unique())
    if NEUTRAL not in present:
        raise DatasetError(f"{path}: no '{NEUTRAL}' rows; every emotion is measured against neutral prompts")
    if len(present) < 2:
        raise DatasetError(f"{path}: only neutral rows; add at least one emotion")
    if emotions is not None:
        unknown = [e for e in emotions if e not in present]
        if unknown:
            raise DatasetError(f"unknown emotion(s) {', '.join(unknown)}; the dataset has {', '.join(present)}")
        df = df[df["emotion"].isin(set(emotions) | {NEUTRAL})]
    df = df.reset_index(drop=True)
    df.attrs["path"] = str(path)
    return df


def load_generation_prompts(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Neutral openings for phase 5 (CSV or JSONL; at least `text`; `id` defaults to a text hash)."""
    path = Path(path) if path else default_generation_prompts_path()
    rows = _read_rows(path, GENERATION_REQUIRED)
    _fill_defaults(rows, GENERATION_COLUMNS)
    _check_common(path, rows)
    df = pd.DataFrame(rows, columns=list(GENERATION_COLUMNS)).reset_index(drop=True)
    df.attrs["path"] = str(path)
    return df


def emotions_of(df: pd.DataFrame) -> list[str]:
    """The non-neutral emotions in the table, sorted."""
    return sorted(e for e in df["emotion"].unique() if e != NEUTRAL)


def _rank(ids, seed: int) -> list:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def subsample(df: pd.DataFrame, per_emotion: int | None, seed: int = 0) -> pd.DataFrame:
    """At most `per_emotion` prompts per emotion, chosen by a seeded hash of the id (stable)."""
    if per_emotion is None:
        return df
    keep = set()
    for _, group in df.groupby("emotion"):
        keep.update(_rank(group["id"].tolist(), seed)[:per_emotion])
    return df[df["id"].isin(keep)].reset_index(drop=True)


def check_emotion_counts(df: pd.DataFrame, held_out_fraction: float, minimum: int = MIN_TRAIN_PROMPTS) -> None:
    """Every emotion (and neutral) of a subsampled table keeps at least `minimum` training prompts after
    the held-out split (`split`): the vectors need them. Raises DatasetError naming each short emotion."""
    labels = split(df, held_out_fraction) if len(df) else pd.Series([], dtype=str)
    short = []
    for emotion, group in df.groupby("emotion"):
        n_train = int((labels[group.index] == "train").sum())
        if n_train < minimum:
            short.append(f"{emotion!r} ({len(group)} prompt(s), {n_train} for training)")
    if short:
        need = minimum
        while need - max(1, math.floor(need * held_out_fraction)) < minimum:
            need += 1
        where = df.attrs.get("path", "the dataset")
        raise DatasetError(
            f"{where}: too few prompts for {', '.join(short)}: each emotion needs at least {minimum} training prompts "
            f"after {held_out_fraction:g} of its prompts are held out (about {need} prompts); add prompts to it, or "
            "leave it out (the profile's emotions / a dataset without it)")


def split(df: pd.DataFrame, held_out_fraction: float = 0.3, seed: int = 0) -> pd.Series:
    """'train' / 'held_out' per row, stratified by emotion, from a seeded hash of the id."""
    if not 0 < held_out_fraction < 1:
        raise DatasetError(f"held_out_fraction must be between 0 and 1, got {held_out_fraction}")
    labels = pd.Series("train", index=df.index)
    for _, group in df.groupby("emotion"):
        ranked = _rank(group["id"].tolist(), seed)
        n_held = max(1, math.floor(len(ranked) * held_out_fraction))
        held = set(ranked[:n_held])
        labels[group.index[group["id"].isin(held)]] = "held_out"
    return labels
