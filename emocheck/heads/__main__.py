"""`python -m emocheck.heads screen|ablate MODEL [--profile P] [--emotion E]`: phase 6 from the shell
(the screen and its tables, or the growth curves of the ablation claims)."""
from __future__ import annotations

import argparse
import logging

from emocheck.heads.experiment import screen
from emocheck.heads.growth import run_growth
from emocheck.profiles import get_profile
from emocheck.study import study_for


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocheck.heads")
    p.add_argument("what", choices=["screen", "ablate"])
    p.add_argument("model")
    p.add_argument("--profile", default=None)
    p.add_argument("--emotion", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    profile = get_profile(args.profile)
    if args.what == "screen":
        result, _, _ = screen(args.model, profile)
        for e in study_for(profile).emotions:
            print(e, result.top_heads(e, 5))
        return 0
    for e in ([args.emotion] if args.emotion else study_for(profile).emotions):
        print(run_growth(args.model, profile, e).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
