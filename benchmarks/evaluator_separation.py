"""Print the measured separation (AUC per label and contrast) of the embedded evaluators on the
separately written validation set data/evaluators/validation.csv (and, marked as such, on the
development set data/evaluators/dev_multisentence.csv).

    python benchmarks/evaluator_separation.py [--markdown] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emocheck.evaluators.validation import separation_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("--csv", help="also write the table to this CSV file")
    args = ap.parse_args()
    tab = separation_table()
    dev = separation_table(dataset="dev_multisentence.csv")
    if args.csv:
        from emocheck.storage import atomic_write_dataframe

        atomic_write_dataframe(args.csv, tab)
    for kind in ("vs_neutral", "specificity"):
        sub = tab[tab["kind"] == kind][["contrast", "n_treated", "n_control", "auc"]]
        print(f"\n## {kind} (AUC; 0.5 = chance)\n")
        if args.markdown:
            print(sub.to_markdown(index=False, floatfmt=".3f"))
        else:
            print(sub.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    print("\n## development set data/evaluators/dev_multisentence.csv (48 multi-sentence texts; it was used "
          "to choose the sentence-level aggregation, so these numbers are not independent)\n")
    sub = dev[["kind", "contrast", "n_treated", "n_control", "auc"]]
    print(sub.to_markdown(index=False, floatfmt=".3f") if args.markdown else sub.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    for ev, mid in tab.groupby("evaluator")["model_id"].first().items():
        print(f"{ev}: {mid}")
    spec = tab[tab["kind"] == "specificity"]
    low = spec[spec["auc"] < 0.9]
    print(f"\nspecificity contrasts below 0.9: {len(low)} of {len(spec)}")
    for r in low.itertuples():
        print(f"  {r.contrast}: {r.auc:.3f}")


if __name__ == "__main__":
    main()
