"""The end-to-end null: a copy of an emotion prompt dataset whose labels carry no emotion.

Every real emotion's prompts are dealt out evenly (at random, seeded) over all the labels, so every
label group holds the same mix of real emotions (neutral included: with `keep_neutral=False`, the
default, the 'neutral' group is such a mix too). Texts, triggers, ids and the other columns stay with
their rows; the real label is kept in a `true_emotion` column. Run the claims on it:

    python -m emocheck.shuffled_labels --seed 0 --out results/label_shuffled_0.csv
    pytest hypotheses/ --emocheck-dataset results/label_shuffled_0.csv --emocheck-profile ci

Every claim family that asserts emotion structure should then be supported in at most its alpha
share of such runs (docs/nulls.md lists which families do and which do not, and why).

`keep_neutral=True` deals out only the emotional prompts and keeps the real neutral group: the
emotion groups then differ from neutral by being emotional at all (a mix of gratitude, anger and
apology against neutral), so claims against neutral may rightly be supported; claims between
emotions (vs_other, specificity) still face the null.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from emocheck.dataset import NEUTRAL, load_emotion_prompts
from emocheck.errors import DatasetError

TRUE_COLUMN = "true_emotion"


def shuffle_within_emotions(df: pd.DataFrame, seed: int, *, keep_neutral: bool = False) -> pd.DataFrame:
    """A copy of the prompt table with labels dealt out evenly within each real emotion (see the doc).

    Group sizes are kept exactly when every real group has the same size (as in the project's data):
    the remainder of n / (number of labels) rotates over the labels from one real emotion to the next."""
    if TRUE_COLUMN in df.columns:
        raise DatasetError(f"the table already has a {TRUE_COLUMN!r} column: it is a shuffled copy already")
    rng = np.random.default_rng(seed)
    labels = sorted(df["emotion"].unique())
    dealt = [e for e in labels if not (keep_neutral and e == NEUTRAL)]
    out = df.copy()
    out[TRUE_COLUMN] = df["emotion"]
    for i, real in enumerate(dealt):
        rows = np.flatnonzero((df["emotion"] == real).to_numpy())
        order = np.roll(np.array(dealt), -i)
        new = np.resize(order, len(rows))
        out.loc[out.index[rng.permutation(rows)], "emotion"] = new
    return out


def write_shuffled(source: str | Path | None, out: str | Path, seed: int, *, keep_neutral: bool = False) -> pd.DataFrame:
    """Read `source` (default: data/emotion_prompts.csv), write the shuffled copy to `out` (CSV,
    atomically), read it back through the dataset loader and check it is the table written."""
    from emocheck.storage import atomic_write_dataframe

    df = load_emotion_prompts(source)
    shuffled = shuffle_within_emotions(df, seed, keep_neutral=keep_neutral)
    keep = [c for c in shuffled.columns if c != "has_trigger"]
    if not df["has_trigger"].all():
        # a dataset without triggers: the loader filled the trigger with the text; write none back
        shuffled.loc[~shuffled["has_trigger"], "trigger"] = ""
    table = shuffled[keep]
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise DatasetError(f"--out {out}: write the shuffled dataset as a .csv file")
    atomic_write_dataframe(out, table)
    back = load_emotion_prompts(out)
    if list(back["id"]) != list(table["id"]) or list(back["emotion"]) != list(table["emotion"]):
        raise DatasetError(f"{out}: the written dataset does not read back as written")
    return back


def mix_table(df: pd.DataFrame) -> pd.DataFrame:
    """Counts of real emotions (columns) in each label group (rows)."""
    return pd.crosstab(df["emotion"], df[TRUE_COLUMN])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emocheck.shuffled_labels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=None, help="the emotion prompt table (default: data/emotion_prompts.csv)")
    ap.add_argument("--out", required=True, help="where to write the shuffled copy (.csv)")
    ap.add_argument("--seed", type=int, required=True, help="seed of the shuffle (0, 1, 2, ... for several runs)")
    ap.add_argument("--keep-neutral", action="store_true", help="deal out only the emotional prompts")
    args = ap.parse_args(argv)
    try:
        back = write_shuffled(args.dataset, args.out, args.seed, keep_neutral=args.keep_neutral)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(back)} prompts; real emotions (columns) in each label group (rows):")
    print(mix_table(back).to_string())
    print(f"run: pytest hypotheses/ --emocheck-dataset {args.out} --emocheck-profile ci")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
