"""Per-session plugin state: settings resolved at configure time and the bookkeeping of a session
(stored in ``config.stash``), shared by the plugin's modules."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emocheck.plugin.claims import Evidence
from emocheck.profiles import Profile


CORRECTIONS = ("bonferroni", "holm", "bh")
CI_METHODS = ("analytic", "bootstrap")
ENV_RESULTS = "EMOCHECK_RESULTS_DIR"
ENV_PROFILE = "EMOCHECK_PROFILE"
WORKERINPUT_RESULTS = "emocheck_results_dir"


class ClaimNotSupported(AssertionError):
    """A claim whose verdict fails it under the session's --emocheck-fail-on policy (raised as the test's
    failure); the two subclasses say which verdict."""


class ClaimRefuted(ClaimNotSupported):
    """A claim whose evidence shows the effect smaller than min_d."""


class ClaimInconclusive(ClaimNotSupported):
    """A claim that is neither supported nor refuted, failed because --emocheck-fail-on inconclusive."""


class _State:
    """Per-session settings and bookkeeping (stored in ``config.stash``)."""

    def __init__(self) -> None:
        self.profile: Profile
        self.correction = "holm"
        self.alpha = 0.05
        self.ci_method = "analytic"
        self.mlflow = False
        self.mlflow_uri = "file:./mlruns"
        self.results_root: Path
        self.is_worker = False
        self.env_backup: dict[str, str | None] = {}
        # collection: module nodeid -> {claim nodeid: family}
        self.declared: dict[str, dict[str, str]] = {}
        self.seen_collectors: set[str] = set()
        self.pending_classes: dict[str, Any] = {}
        self.family_sizes: Counter = Counter()
        self.claim_alphas: dict[str, tuple[str, float]] = {}  # claim nodeid -> (family, its own alpha)
        # controller
        self.results: dict[str, dict] = {}
        self.reports: dict[str, Any] = {}
        self.junit_reporters: dict[str, Any] = {}
        self.rows: list[dict] = []
        self.families: dict[str, dict] = {}
        self.paths: dict[str, Path] = {}
        self.late_failures: list[dict] = []      # claims whose test outcome the correction changed
        # exit policy and baseline (emocheck.plugin.compare)
        self.fail_on = "refuted"
        self.baseline_path: Path | None = None
        self.baseline: dict[str, dict] | None = None       # {claim_id: {"verdict", "d", "registration"}}
        self.baseline_comparison = None                    # compare.SessionComparison, controller only
        self.mlflow_run: str | None = None
        self.notes: list[str] = []
        self.config: pytest.Config | None = None
        self.started = time.time()   # statistics files older than this are an earlier session's
        self.preflight_error: BaseException | None = None
        # pre-registration (emocheck.plugin.preregistration) and provenance
        self.preregister = False
        self.preregister_force = False
        self.registration_status = False
        self.prereg_path: Path
        self.declared_items: dict[str, Any] = {}
        self.prereg_entry: dict | None = None
        self.registration: dict | None = None
        self.registration_check: dict | None = None  # --emocheck-registration-status
        self.t0 = time.perf_counter()
        self.times: dict[str, float] = {}

    def settings(self) -> dict:
        return {
            "profile": self.profile.name,
            "models": list(self.profile.models),
            "correction": self.correction,
            "alpha": self.alpha,
            "ci_method": self.ci_method,
            "bootstrap_resamples": self.profile.bootstrap_resamples,
            "profile_seed": self.profile.seed,
            "dataset": self.profile.dataset,
            "generation_prompts_file": self.profile.generation_prompts_file,
            "results_dir": str(self.results_root),
            "fail_on": self.fail_on,
            "baseline": str(self.baseline_path) if self.baseline_path else None,
        }


STATE_KEY = pytest.StashKey[_State]()
EVIDENCE_KEY = pytest.StashKey[Evidence]()
CLAIM_ID_KEY = pytest.StashKey[str]()


def _state(config) -> _State:
    return config.stash[STATE_KEY]


def session_profile(config):
    """The active Profile of a pytest session (after --emocheck-profile, --emocheck-models and the data
    options): what a conftest's or fixture module's `pytest_generate_tests` parametrizes over."""
    return _state(config).profile
