"""Where the evaluator data lives: data/evaluators/ in the repository ($EMOCHECK_EVALUATOR_DATA overrides)."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("EMOCHECK_EVALUATOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data" / "evaluators"


def heads_dir() -> Path:
    return data_dir() / "heads"
