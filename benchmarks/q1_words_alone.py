"""Which Q1 representation claims beat words alone? Plain functions, no pytest: for each model, emotion
and contrast (vs_neutral with the emotion-minus-neutral direction, vs_other with the emotion-specific
direction) at one position rule, the direction's held-out AUC, the word n-gram baseline's AUC on the same
held-out prompts, DeLong's 95% interval of the difference and the paired-permutation p (2000 draws),
Holm-adjusted over the claims of the run. One CSV row per claim is appended as soon as it is computed.

    python benchmarks/q1_words_alone.py --models smollm2-135m gemma3-270m --positions last --out results/ci/q1_words_alone.csv
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emocheck.dataset import emotions_of  # noqa: E402
from emocheck.profiles import get_profile  # noqa: E402
from emocheck.representations import lexical  # noqa: E402
from emocheck.representations.build import build_representations  # noqa: E402
from emocheck.representations.q1 import beats_words_null, judge_direction, masked_held_out  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--positions", nargs="+", default=["last"])
    ap.add_argument("--subsets", nargs="+", default=["all"])
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = get_profile(args.profile)
    rows = []
    for model in args.models:
        t0 = time.time()
        reps = build_representations(model, profile, dataset=args.dataset, progress=False)
        print(f"{model}: representations in {time.time() - t0:.0f}s", flush=True)
        masked = None
        for subset in args.subsets:
            if subset == "masked" and masked is None:
                masked = masked_held_out(reps, model, progress=False)
            for position in args.positions:
                for emotion in emotions_of(reps.prompts):
                    for kind in ("vs_neutral", "vs_other"):
                        res = judge_direction(reps, emotion, direction_kind=kind, contrast=kind, position=position,
                                              subset=subset, masked_acts=masked)
                        observed, null = beats_words_null(res, draws=2000, seed=0)
                        m = res.metrics()
                        row = {"model": model, "dataset": reps.prompts.attrs["path"], "emotion": emotion,
                               "direction": kind, "contrast": kind, "position": position, "subset": subset,
                               "layer": m["layer"], "n_treated": m["n_treated"], "n_control": m["n_control"],
                               "direction_auc": m["held_out_auc"], "lexical_auc": m["lexical_auc"],
                               "auc_difference": m["auc_minus_lexical"],
                               "delong_ci_low": m["auc_minus_lexical_ci_low"],
                               "delong_ci_high": m["auc_minus_lexical_ci_high"],
                               "delong_p_greater": m["delong_p_greater"],
                               "permutation_p": lexical.permutation_p(observed, null)}
                        rows.append(row)
                        pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False)
                        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                       if k != "dataset"), flush=True)
    from statsmodels.stats.multitest import multipletests

    df = pd.DataFrame(rows)
    df["permutation_p_holm"] = multipletests(df["permutation_p"], method="holm")[1]
    df.to_csv(out.with_name(out.stem + "_holm.csv"), index=False)
    print(df[["model", "emotion", "direction", "position", "subset", "direction_auc", "lexical_auc",
              "auc_difference", "permutation_p_holm"]].to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
