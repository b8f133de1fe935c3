"""The emotion prompt dataset and the neutral generation prompts (phase 1).

`data/emotion_prompts.csv`: one row per prompt, shared by every model, with columns
    id, emotion, text, trigger, genre, formality, explicitness, topic
where `trigger` is the exact substring of `text` that carries the emotion (for neutral rows, the
main content phrase at a comparable position). Adding an emotion is adding rows with a new
`emotion` value. `data/generation_prompts.csv` (id, text, genre, topic) holds neutral openings that
phase 5 continues by generation. See data/DATA_CARD.md for how they were made and their limits.

The loaders validate every row and name the file, row number and id of the first bad row.
Splits are deterministic: a prompt's split depends only on its id and the seed, so adding rows never
moves existing prompts between train and held-out.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from pathlib import Path

import pandas as pd

from .errors import DatasetError

EMOTION_COLUMNS = ("id", "emotion", "text", "trigger", "genre", "formality", "explicitness", "topic")
GENERATION_COLUMNS = ("id", "text", "genre", "topic")
NEUTRAL = "neutral"
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
        raise DatasetError(f"data file {path} does not exist (set EMOCHECK_DATA_DIR or run from the repository root)")
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as fh:
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


def _check_common(path: Path, rows: list[dict]) -> None:
    seen_ids, seen_texts = {}, {}
    for row in rows:
        where = f"{path} line {row['_line']} (id {row.get('id') or '?'})"
        for col in ("id", "text"):
            if not row[col].strip():
                raise DatasetError(f"{where}: empty {col}")
        if row["id"] in seen_ids:
            raise DatasetError(f"{where}: duplicate id, first used on line {seen_ids[row['id']]}")
        seen_ids[row["id"]] = row["_line"]
        key = row["text"].strip()
        if key in seen_texts:
            raise DatasetError(f"{where}: duplicate text, first on line {seen_texts[key]}")
        seen_texts[key] = row["_line"]


def load_emotion_prompts(path: str | os.PathLike | None = None, emotions: list[str] | None = None) -> pd.DataFrame:
    """Load and validate the emotion prompt table; optionally keep only some emotions (neutral kept)."""
    path = Path(path) if path else data_dir() / "emotion_prompts.csv"
    rows = _read_rows(path, EMOTION_COLUMNS)
    _check_common(path, rows)
    for row in rows:
        where = f"{path} line {row['_line']} (id {row['id']})"
        if not _EMOTION_RE.match(row["emotion"]):
            raise DatasetError(f"{where}: emotion {row['emotion']!r} must be a lowercase word like 'gratitude'")
        if not row["trigger"]:
            raise DatasetError(f"{where}: empty trigger; give the substring of the text that carries the emotion")
        if row["trigger"] not in row["text"]:
            raise DatasetError(f"{where}: trigger {row['trigger']!r} is not a substring of the text {row['text']!r}")
    df = pd.DataFrame(rows, columns=list(EMOTION_COLUMNS))
    present = sorted(df["emotion"].unique())
    if NEUTRAL not in present:
        raise DatasetError(f"{path}: no '{NEUTRAL}' rows; every emotion is measured against neutral prompts")
    if emotions is not None:
        unknown = [e for e in emotions if e not in present]
        if unknown:
            raise DatasetError(f"unknown emotion(s) {', '.join(unknown)}; the dataset has {', '.join(present)}")
        df = df[df["emotion"].isin(set(emotions) | {NEUTRAL})]
    return df.reset_index(drop=True)


def load_generation_prompts(path: str | os.PathLike | None = None) -> pd.DataFrame:
    path = Path(path) if path else data_dir() / "generation_prompts.csv"
    rows = _read_rows(path, GENERATION_COLUMNS)
    _check_common(path, rows)
    return pd.DataFrame(rows, columns=list(GENERATION_COLUMNS)).reset_index(drop=True)


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
