"""emocheck's pytest plugin: research claims in, effect sizes, corrected p-values and power out.

Registered through the ``pytest11`` entry point ``emocheck = "emocheck.plugin.hooks"`` (disable with
``-p no:emocheck``). Claims are written with :func:`emocheck.claim` (see ``emocheck.claims``)::

    @claim("the {emotion} direction separates {emotion} prompts from neutral ones",
           family="q1_separation", paired=False, alternative="greater", min_d=0.5)
    @pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
    def test_separates(model_name, emotion, evidence):
        evidence.record(treated=scores_emotion, control=scores_neutral, metrics={"auc": auc})

Options (command line, else ini, else default)
-------------------------------------------------
=========================  ========================  =================================================
option                     ini                       meaning
=========================  ========================  =================================================
--emocheck-profile NAME    emocheck_profile          profile (smoke/ci/full); else $EMOCHECK_PROFILE, else ci
--emocheck-models a,b      -                         replace the profile's model list
--emocheck-correction M    emocheck_correction       bonferroni | holm (default) | bh
--emocheck-alpha A         emocheck_alpha            session alpha (default 0.05); a claim may set its own
--emocheck-ci-method M     emocheck_ci_method        analytic (default) | bootstrap (BCa)
--emocheck-results DIR     emocheck_results          results root (default <rootdir>/results; else $EMOCHECK_RESULTS_DIR)
--emocheck-dataset PATH    emocheck_dataset          emotion prompts CSV/JSONL (else the profile's, $EMOCHECK_DATASET, data/)
--emocheck-generation-prompts PATH  emocheck_generation_prompts  phase-5 openings CSV/JSONL
-                          emocheck_profiles         user profiles, one per line (also [tool.emocheck.profiles.*])
--emocheck-mlflow          emocheck_mlflow           log the session to MLflow (pip install 'emocheck[mlflow]')
--emocheck-mlflow-uri URI  emocheck_mlflow_uri       tracking URI (default file:./mlruns)
--emocheck-preregister     -                         write the claims' spec hashes to the lock; run no claim
--emocheck-preregister-force -                       ... even though results exist (recorded as forced)
--emocheck-preregistration emocheck_preregistration  the lock file (default <rootdir>/preregistration.json)
=========================  ========================  =================================================

``pytest_configure`` exports the resolved results root and profile name as
``EMOCHECK_RESULTS_DIR`` / ``EMOCHECK_PROFILE`` so library code (``profiles.results_dir``) writes to
the same place; xdist workers get the results root through ``workerinput`` as well (they also
inherit the environment). Fixtures that need the model list should use the session fixture
``emocheck_profile`` (it includes ``--emocheck-models``).

Models and xdist
----------------
A test that takes ``model_name`` and does not parametrize it itself is parametrized over the active
profile's models, with the model name as the id, so ``pytest hypotheses/ -k gemma`` selects the
``gemma3-270m`` claims. Each such test carries ``pytest.mark.xdist_group(name=<model>)``: with
``pytest -n 2 --dist loadgroup`` every model is loaded by one worker only. ``--dist loadgroup`` may
stay in ``addopts`` (needs pytest-xdist installed): without ``-n`` it has no effect. xdist appends
``@<model>`` to node ids under loadgroup; emocheck takes claim ids before that, so claim ids and
seeds are the same with or without xdist. (pytest-xdist 3.8 cannot add that suffix under
pytest >= 9.2, which makes loadgroup silently behave like ``load``; emocheck's worker-side shim
adds it, see ``_loadgroup_modifyitems``.)

Statistics flow and verdict
---------------------------
1. *Worker (the process that runs the test).* When a claim test returns, the plugin takes the
   evidence it recorded and calls ``emocheck.stats.compare`` with the claim's ``paired``,
   ``alternative``, ``min_d`` and alpha, the session CI method, the profile's bootstrap resamples
   and a seed derived from the claim id (``storage.stable_hash`` of the node id and the profile
   seed; never Python's ``hash()``). The per-claim result -- settings, formatted statement, family
   and its declared size, model and parameters, ``Comparison.to_dict()``, metrics and the
   per-sample values -- travels on the test report as plain builtins (``report.emocheck``).
   The test FAILS at once if the claim is not supported even before correction (correction only
   raises p-values, so this is final), with d, its CI and both p-values in the message; otherwise
   it passes provisionally. A claim test that records no evidence, records twice, records too few
   or non-finite samples (EvidenceError) is reported as an ERROR with the reason; so is a test
   that uses ``evidence`` without ``@claim``.
2. *Families are declared, not selected.* The correction family of a claim is every claim with the
   same ``family=`` in its module, for every model of the active profile, counted at collection
   before ``-k``/``-m``/``--deselect`` remove anything, including tests a ``file.py::test_x``
   selection did not ask for. A family must live in one module (otherwise: usage error). Members
   that do not run in this session (deselected, skipped, errored) enter the correction as p = 1,
   so running a subset never makes a claim easier to pass.
3. *Controller (after all workers finish).* Claims are ordered by claim id and, per family, both
   ``p_value`` and ``p_min_effect`` are adjusted with the session method (``holm`` default;
   Bonferroni, Holm and BH are all computed for the CSV) with ``n_tests`` = declared family size.
   ``stats.verdict`` then says "supported" iff both corrected p-values are below alpha. A claim
   that passed in the worker but is not supported after correction is turned into a failure
   (``session.testsfailed``, terminal stats, ``--lf`` cache, JUnit) and listed as
   "not supported after <method> correction". The exit status is therefore 0 only if every claim
   that ran is supported and nothing errored. Numbers are identical with no xdist, ``-n 1`` or
   ``-n 2``.
4. *Report.* The terminal summary prints one row per claim (id, model, statement, n, d [CI], raw
   p, corrected p, corrected p(d>min_d), the multiplicity-adjusted bound that decided it, planning
   power of the rule at alpha / m: the detectable d and the n needed for d = min_d + 0.2/0.3/0.5,
   verdict with its sign for two-sided claims and the reason when not supported),
   the correction, alpha and the family sizes (declared / run).
5. *Files* (``results/<profile>/statistics/``, written atomically, describing exactly this session:
   claims not run in this session are not kept): ``effect_sizes.csv``, ``power_analysis.csv``,
   ``power_analysis.json``, ``samples/<claim>.csv``, ``report.md``, ``forest_plot.png``,
   ``session.json``. ``report.md`` is appended to ``$GITHUB_STEP_SUMMARY`` when that is set.
6. *JUnit XML.* Each claim's testcase carries properties ``emocheck_family``, ``emocheck_d``,
   ``emocheck_d_ci``, ``emocheck_p_raw``, ``emocheck_p_min_effect_raw``,
   ``emocheck_verdict_uncorrected`` and, added after correction, ``emocheck_correction``,
   ``emocheck_p_adjusted``, ``emocheck_p_min_effect_adjusted``, ``emocheck_verdict``; a claim that
   fails only after correction also gets a ``<failure>`` element.
7. *MLflow* (``--emocheck-mlflow``): one run per session, see ``emocheck.tracking``. MLflow >= 3
   keeps the ``file:`` store in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE=true;
   emocheck sets that for its own ``file:`` URI only. A logging failure is printed in red in the
   summary and does not change the verdicts.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emocheck.plugin.claims import MARKER, ClaimSpec, Evidence, claim_spec, format_statement
from emocheck.errors import ConfigError, DatasetError, EmocheckError, EvidenceError
from emocheck.profiles import Profile, get_profile, results_dir
from emocheck.storage import stable_hash

CORRECTIONS = ("bonferroni", "holm", "bh")
CI_METHODS = ("analytic", "bootstrap")
ENV_RESULTS = "EMOCHECK_RESULTS_DIR"
ENV_PROFILE = "EMOCHECK_PROFILE"
WORKERINPUT_RESULTS = "emocheck_results_dir"


class ClaimNotSupported(AssertionError):
    """A claim whose evidence does not support it (raised as the test's failure)."""


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
        self.late_failures: list[dict] = []
        self.mlflow_run: str | None = None
        self.notes: list[str] = []
        self.config: pytest.Config | None = None
        self.started = time.time()   # statistics files older than this are an earlier session's
        self.preflight_error: BaseException | None = None
        # pre-registration (emocheck.plugin.preregistration) and provenance
        self.preregister = False
        self.preregister_force = False
        self.prereg_path: Path
        self.declared_items: dict[str, Any] = {}
        self.prereg_entry: dict | None = None
        self.registration: dict | None = None
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
        }


STATE_KEY = pytest.StashKey[_State]()
EVIDENCE_KEY = pytest.StashKey[Evidence]()
CLAIM_ID_KEY = pytest.StashKey[str]()


def _state(config) -> _State:
    return config.stash[STATE_KEY]


# ----------------------------------------------------------------------------------------------
# Options and configuration
# ----------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emocheck", "emocheck: research claims judged with statistics")
    group.addoption("--emocheck-profile", default=None, metavar="NAME",
                    help="profile (smoke, ci, full); default: ini emocheck_profile, $EMOCHECK_PROFILE, ci")
    group.addoption("--emocheck-models", default=None, metavar="A,B",
                    help="comma-separated models replacing the profile's model list")
    group.addoption("--emocheck-correction", default=None, choices=CORRECTIONS,
                    help="multiple-comparison correction within a family (default: ini, holm)")
    group.addoption("--emocheck-alpha", default=None, type=float, metavar="ALPHA",
                    help="significance level for claims without their own alpha (default: ini, 0.05)")
    group.addoption("--emocheck-ci-method", default=None, choices=CI_METHODS,
                    help="confidence interval of d: analytic (noncentral t) or bootstrap (BCa)")
    group.addoption("--emocheck-results", default=None, metavar="DIR",
                    help="results root; statistics go to DIR/<profile>/statistics (default <rootdir>/results)")
    group.addoption("--emocheck-dataset", default=None, metavar="PATH",
                    help="emotion prompts (CSV or JSONL with text, emotion; optional trigger, id, metadata) "
                         "instead of data/emotion_prompts.csv (default: ini emocheck_dataset, profile, $EMOCHECK_DATASET)")
    group.addoption("--emocheck-generation-prompts", default=None, metavar="PATH",
                    help="neutral generation prompts (CSV or JSONL with text) for phase 5")
    group.addoption("--emocheck-mlflow", action="store_true", default=None,
                    help="log the session (settings, per-claim numbers, statistics files) to MLflow")
    group.addoption("--emocheck-mlflow-uri", default=None, metavar="URI",
                    help="MLflow tracking URI (default: ini emocheck_mlflow_uri, file:./mlruns)")
    group.addoption("--emocheck-preregister", action="store_true", default=False,
                    help="write every collected claim's spec hash to the preregistration lock; runs no claim")
    group.addoption("--emocheck-preregister-force", action="store_true", default=False,
                    help="with --emocheck-preregister: write the lock although results exist (recorded as forced)")
    group.addoption("--emocheck-preregistration", default=None, metavar="FILE",
                    help="the preregistration lock (default: ini emocheck_preregistration, <rootdir>/preregistration.json)")
    parser.addini("emocheck_preregistration", "preregistration lock file (relative to the ini file)", default="")
    parser.addini("emocheck_profile", "default emocheck profile", default="")
    parser.addini("emocheck_correction", "bonferroni | holm | bh", default="holm")
    parser.addini("emocheck_alpha", "default significance level", default="0.05")
    parser.addini("emocheck_ci_method", "analytic | bootstrap", default="analytic")
    parser.addini("emocheck_results", "results root (relative to the ini file)", default="")
    parser.addini("emocheck_dataset", "emotion prompts file (relative to the ini file)", default="")
    parser.addini("emocheck_generation_prompts", "generation prompts file (relative to the ini file)", default="")
    parser.addini("emocheck_profiles", "user profiles, one per line: NAME: key=value ...", type="linelist", default=[])
    parser.addini("emocheck_mlflow", "log sessions to MLflow", type="bool", default=False)
    parser.addini("emocheck_mlflow_uri", "MLflow tracking URI", default="file:./mlruns")
    group.addoption("--emocheck-remote", default=None, metavar="WHERE", nargs="?", const="1",
                    help="run patched generation on NDIF through nnsight remote execution ('local': "
                         "nnsight's in-process simulation of it); sets $EMOCHECK_REMOTE")


def _resolve(config: pytest.Config) -> _State:
    state = _State()
    state.is_worker = hasattr(config, "workerinput")
    opt = config.getoption
    name = opt("--emocheck-profile") or config.getini("emocheck_profile") or os.environ.get(ENV_PROFILE) or "ci"
    models_opt = opt("--emocheck-models")
    models = [m.strip() for m in models_opt.split(",") if m.strip()] if models_opt else None
    if models_opt is not None and not models:
        raise pytest.UsageError("--emocheck-models needs at least one model name (comma-separated)")
    try:
        _register_user_profiles(config)
        state.profile = get_profile(name, models)
        _resolve_data_files(config, state)
    except (ConfigError, DatasetError) as exc:
        raise pytest.UsageError(str(exc)) from None

    correction = opt("--emocheck-correction") or config.getini("emocheck_correction") or "holm"
    if correction not in CORRECTIONS:
        raise pytest.UsageError(f"emocheck_correction = {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    state.correction = correction

    alpha_raw = opt("--emocheck-alpha")
    if alpha_raw is None:
        alpha_raw = config.getini("emocheck_alpha") or "0.05"
    try:
        alpha = float(alpha_raw)
    except ValueError:
        raise pytest.UsageError(f"emocheck alpha must be a number, got {alpha_raw!r}") from None
    if not 0 < alpha < 0.5:
        raise pytest.UsageError(f"emocheck alpha must lie in (0, 0.5), got {alpha}")
    state.alpha = alpha

    ci_method = opt("--emocheck-ci-method") or config.getini("emocheck_ci_method") or "analytic"
    if ci_method not in CI_METHODS:
        raise pytest.UsageError(f"emocheck_ci_method = {ci_method!r}; choose analytic or bootstrap")
    state.ci_method = ci_method

    flag = opt("--emocheck-mlflow")
    state.mlflow = bool(flag) if flag is not None else bool(config.getini("emocheck_mlflow"))
    state.mlflow_uri = opt("--emocheck-mlflow-uri") or config.getini("emocheck_mlflow_uri") or "file:./mlruns"

    workerinput = getattr(config, "workerinput", None) or {}
    if workerinput.get(WORKERINPUT_RESULTS):
        root = Path(workerinput[WORKERINPUT_RESULTS])
    elif opt("--emocheck-results"):
        root = Path(config.invocation_params.dir, opt("--emocheck-results"))
    elif config.getini("emocheck_results"):
        base = config.inipath.parent if config.inipath else config.rootpath
        root = Path(base, config.getini("emocheck_results"))
    elif os.environ.get(ENV_RESULTS):
        root = Path(os.environ[ENV_RESULTS])
    else:
        root = config.rootpath / "results"
    state.results_root = root.resolve()

    state.preregister = bool(opt("--emocheck-preregister"))
    state.preregister_force = bool(opt("--emocheck-preregister-force"))
    if state.preregister_force and not state.preregister:
        raise pytest.UsageError("--emocheck-preregister-force only goes with --emocheck-preregister")
    if opt("--emocheck-preregistration"):
        lock = Path(config.invocation_params.dir, opt("--emocheck-preregistration"))
    elif config.getini("emocheck_preregistration"):
        base = config.inipath.parent if config.inipath else config.rootpath
        lock = Path(base, config.getini("emocheck_preregistration"))
    else:
        lock = config.rootpath / "preregistration.json"
    state.prereg_path = lock.resolve()
    if state.preregister and (getattr(config.option, "numprocesses", None) or 0) and not state.is_worker:
        raise pytest.UsageError("--emocheck-preregister runs no claim and collects in one process; drop -n")
    return state


def _register_user_profiles(config: pytest.Config) -> None:
    """Profiles from [tool.emocheck.profiles.*] of the rootdir's pyproject.toml and the ini's emocheck_profiles."""
    from emocheck.profiles import profiles_from_ini_lines, profiles_from_pyproject, register_profiles

    found = profiles_from_pyproject(config.rootpath / "pyproject.toml")
    base = config.inipath.parent if config.inipath else config.rootpath
    found.update(profiles_from_ini_lines(config.getini("emocheck_profiles"), base_dir=base))
    register_profiles(found)


def _resolve_data_files(config: pytest.Config, state: _State) -> None:
    """--emocheck-dataset / --emocheck-generation-prompts, else the ini keys, else the profile's files;
    validated now (one clear error before any model loads) and handed on through the environment."""
    from dataclasses import replace

    from emocheck.dataset import ENV_DATASET, ENV_GENERATION_PROMPTS, load_emotion_prompts, load_generation_prompts

    base = config.inipath.parent if config.inipath else config.rootpath
    state.data_files = {}
    for opt_name, ini_name, field_name, env, loader in (
            ("--emocheck-dataset", "emocheck_dataset", "dataset", ENV_DATASET, load_emotion_prompts),
            ("--emocheck-generation-prompts", "emocheck_generation_prompts", "generation_prompts_file",
             ENV_GENERATION_PROMPTS, load_generation_prompts)):
        if config.getoption(opt_name):
            path = Path(config.invocation_params.dir, config.getoption(opt_name))
        elif config.getini(ini_name):
            path = Path(base, config.getini(ini_name))
        elif getattr(state.profile, field_name):
            path = Path(getattr(state.profile, field_name))
        elif os.environ.get(env):
            path = Path(os.environ[env])
        else:
            continue
        path = path.resolve()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the missing-trigger warning is given once, by the build
            loader(path)
        state.data_files[env] = str(path)
        state.profile = replace(state.profile, **{field_name: str(path)})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(statement, family, paired, alternative, min_d, alpha): a research claim judged by "
        "emocheck's statistics (write it with emocheck.claim(...))",
    )
    config.addinivalue_line(
        "markers", "emocheck_design(controls, position, site, layer_rule, data, ...): design fields of a claim's "
        "pre-registered spec (write it with emocheck.plugin.spec_hash.design(...))")
    if not config.pluginmanager.hasplugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): run tests of one group on one xdist worker")
    state = _resolve(config)
    if state.mlflow and not state.is_worker:
        from emocheck.plugin.tracking import require_mlflow

        try:
            require_mlflow()
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    for key, value in ((ENV_RESULTS, str(state.results_root)), (ENV_PROFILE, state.profile.name),
                       *getattr(state, "data_files", {}).items()):
        state.env_backup[key] = os.environ.get(key)
        os.environ[key] = value
    state.config = config
    config.stash[STATE_KEY] = state
    remote = config.getoption("--emocheck-remote", None)      # nnsight remote execution (speed)
    if remote:
        state.env_backup.setdefault("EMOCHECK_REMOTE", os.environ.get("EMOCHECK_REMOTE"))
        os.environ["EMOCHECK_REMOTE"] = remote
    config.pluginmanager.register(_SessionPlugin(config, state), f"emocheck-session-{id(config)}")
    if state.preregister and not state.is_worker:
        from emocheck.plugin.register_hooks import PreregisterPlugin

        config.pluginmanager.register(PreregisterPlugin(config, state), f"emocheck-preregister-{id(config)}")
    if state.is_worker:
        config.pluginmanager.register(_LoadgroupShim(), f"emocheck-loadgroup-{id(config)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    for key, value in state.env_backup.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: hand every worker the results root (workers also inherit os.environ)."""
    state = node.config.stash.get(STATE_KEY, None)
    if state is not None:
        node.workerinput[WORKERINPUT_RESULTS] = str(state.results_root)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return []
    return [
        f"emocheck: profile {state.profile.name} (models: {', '.join(state.profile.models)}), "
        f"correction {state.correction}, alpha {state.alpha:g}, CI {state.ci_method}, "
        f"results {state.results_root / state.profile.name / 'statistics'}"
    ]


# ----------------------------------------------------------------------------------------------
# Fixtures and parametrisation
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emocheck_profile(pytestconfig) -> Profile:
    """The active Profile (``--emocheck-profile``, ini, $EMOCHECK_PROFILE or 'ci'; ``--emocheck-models``)."""
    return _state(pytestconfig).profile


@pytest.fixture
def evidence(request) -> Evidence:
    """Recorder for a claim's samples: ``evidence.record(treated=..., control=..., metrics=...)``."""
    spec = claim_spec(request.node)
    if spec is None:
        raise EvidenceError(
            f"{request.node.nodeid} uses the `evidence` fixture but has no @claim(...) marker; "
            "decorate it with @emocheck.claim('statement', family='...') or drop the fixture"
        )
    ev = Evidence(request.node.stash.get(CLAIM_ID_KEY, request.node.nodeid), spec)
    request.node.stash[EVIDENCE_KEY] = ev
    return ev


def _parametrizes(metafunc, argname: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if argname in names:
            return True
    # Another pytest_generate_tests hook (a conftest) may have parametrized it already.
    return any(argname in getattr(c, "params", {}) for c in getattr(metafunc, "_calls", []))


def pytest_generate_tests(metafunc) -> None:
    if "model_name" not in metafunc.fixturenames or _parametrizes(metafunc, "model_name"):
        return
    models = _state(metafunc.config).profile.models
    metafunc.parametrize(
        "model_name",
        [pytest.param(m, id=m, marks=pytest.mark.xdist_group(name=m)) for m in models],
    )


# ----------------------------------------------------------------------------------------------
# Collection: count declared family members
# ----------------------------------------------------------------------------------------------


def _module_id(node) -> str:
    module = node.getparent(pytest.Module)
    return module.nodeid if module is not None else ""


def _note_children(state: _State, children) -> None:
    for child in children:
        if isinstance(child, pytest.Function):
            try:
                spec = claim_spec(child)
            except ConfigError:
                continue  # reported when the test runs
            if spec is not None:
                state.declared.setdefault(_module_id(child), {})[child.nodeid] = spec.family
                if spec.alpha is not None:
                    state.claim_alphas[child.nodeid] = (spec.family, spec.alpha)
                state.declared_items[child.nodeid] = child
        elif isinstance(child, pytest.Class) and child.nodeid not in state.seen_collectors:
            state.pending_classes[child.nodeid] = child


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # Module.collect() returns every test of the module, before a `file.py::test_x` selection or
    # -k prunes them: that is where the declared family members are counted.
    report = yield
    if isinstance(collector, (pytest.Module, pytest.Class)) and report.passed:
        state = collector.config.stash.get(STATE_KEY, None)
        if state is not None:
            state.seen_collectors.add(collector.nodeid)
            state.pending_classes.pop(collector.nodeid, None)
            _note_children(state, report.result or [])
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    # tryfirst: runs before -k / -m / --deselect remove items.
    state = _state(config)
    while state.pending_classes:  # classes a node-id selection did not collect
        nodeid, cls = state.pending_classes.popitem()
        state.seen_collectors.add(nodeid)
        try:
            _note_children(state, cls.collect())
        except Exception:  # noqa: BLE001 - a broken class errors when it is collected for real
            continue
    for item in items:
        item.stash[CLAIM_ID_KEY] = item.nodeid  # before xdist's loadgroup adds "@group"
    modules: dict[str, set[str]] = {}
    sizes: Counter = Counter()
    for module_id, members in state.declared.items():
        for family in members.values():
            modules.setdefault(family, set()).add(module_id)
            sizes[family] += 1
    split = {f: sorted(m) for f, m in modules.items() if len(m) > 1}
    if split:
        lines = [f"  family {f!r} is declared in {', '.join(m)}" for f, m in sorted(split.items())]
        raise pytest.UsageError(
            "emocheck: a claim family must live in one module (so that its size can be counted "
            "whatever -k selects); rename the family in all but one module:\n" + "\n".join(lines)
        )
    # A family is corrected at one level: a claim's own alpha inside a family of several claims
    # would test some members at another level than the correction assumes.
    own_alpha = sorted((nodeid, fam, a) for nodeid, (fam, a) in state.claim_alphas.items() if sizes[fam] > 1)
    if own_alpha:
        lines = [f"  {nodeid}: alpha={a:g} in family {fam!r} ({sizes[fam]} claims)" for nodeid, fam, a in own_alpha[:10]]
        raise pytest.UsageError(
            "emocheck: a claim-level alpha= inside a correction family is incoherent (the family is corrected "
            "at one level); drop alpha= and set the level for the session with --emocheck-alpha, or give "
            "the claim a family of its own:\n" + "\n".join(lines)
        )
    state.family_sizes = sizes
    claims = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if claims:
        _preflight(state, claims)


# Fixtures (fixtures/) that load a model or read the prompt tables: a claim that uses one of them
# gets its models / the dataset checked before anything runs (a claim that only takes `model_name` as
# a label does not).
MODEL_FIXTURES = {"model", "representations", "emotion_vectors", "emotion_subspaces", "patching_selection",
                  "patching_samples"}
DATA_FIXTURES = {"representations", "emotion_vectors", "emotion_subspaces", "emotion_prompts", "generation_prompts",
                 "patching_selection", "patching_samples"}


def _preflight(state: _State, claims: list) -> None:
    """Claims are about to run: check the results folder, profile, models, dataset and layers first."""
    from emocheck.plugin.preflight import preflight

    models, dataset = [], False
    for item in claims:
        names = set(getattr(item, "fixturenames", ()))
        if names & MODEL_FIXTURES:
            params = getattr(getattr(item, "callspec", None), "params", {})
            name = params.get("model_name")
            if isinstance(name, str) and name not in models:
                models.append(name)
        dataset = dataset or bool(names & DATA_FIXTURES)
    try:
        preflight(state.profile, state.results_root, models=models, dataset=dataset)
    except EmocheckError as exc:
        if not state.is_worker:
            raise pytest.UsageError(f"emocheck: {exc}") from None
        # An xdist worker cannot stop the session from collection (xdist turns that into an
        # INTERNALERROR): every claim errors at setup with the message instead, before any fixture runs.
        state.preflight_error = exc
        for item in claims:
            item.stash[PREFLIGHT_KEY] = exc


PREFLIGHT_KEY = pytest.StashKey[BaseException]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    exc = item.stash.get(PREFLIGHT_KEY, None)
    if exc is not None:
        raise type(exc)(f"preflight: {exc}")


def _short_error(excinfo) -> str:
    """An EmocheckError as pytest shows an exception line ('E   Type: message'), then the place in the
    user's code (test or fixture) it came from; library frames are left out."""
    import emocheck

    library = Path(emocheck.__file__).resolve().parent
    where = ""
    for entry in reversed(excinfo.traceback):
        path = Path(str(entry.path))
        if library not in path.resolve().parents and "_pytest" not in path.parts and "pluggy" not in path.parts:
            where = f"{entry.path}:{entry.lineno + 1}"
            break
    value = excinfo.value
    lines = [f"E   {line}" for line in f"{type(value).__name__}: {value}".splitlines()]
    return "\n".join(lines + ([f"    (raised from {where})"] if where else []))


@pytest.hookimpl(trylast=True)
def _loadgroup_modifyitems(session, config, items) -> None:  # registered on workers via _LoadgroupShim
    """Work around pytest-xdist 3.8 + pytest >= 9.2: ``--dist loadgroup`` silently acts like ``load``.

    xdist marks an item's group by assigning ``item._nodeid = nodeid + "@group"`` on the worker, but
    pytest 9.2 derives ``nodeid`` from ``item._id`` (a NodeId), so the suffix never appears and the
    scheduler puts every test in its own group. If, after xdist's hook, a grouped item still lacks
    the suffix, add it the way xdist intends (claim ids are taken before this and stay clean).
    """
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    for item in items:
        names = set()
        for mark in item.iter_markers("xdist_group"):
            names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
        if not names:
            continue
        suffix = "@" + "_".join(sorted(names))
        if item.nodeid.endswith(suffix) or not hasattr(item, "_id"):
            continue
        try:
            item._id = type(item._id).parse(item.nodeid + suffix)
        except Exception:  # noqa: BLE001 - pytest internals changed again: leave xdist's result
            return


class _LoadgroupShim:
    pytest_collection_modifyitems = staticmethod(_loadgroup_modifyitems)


# ----------------------------------------------------------------------------------------------
# Running a claim
# ----------------------------------------------------------------------------------------------


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:
        try:
            return value.item()
        except Exception:  # noqa: BLE001
            pass
    return str(value)


def _claim_id(item) -> str:
    return item.stash.get(CLAIM_ID_KEY, item.nodeid)


def _seed(claim_id: str, profile: Profile) -> int:
    return int(stable_hash({"claim": claim_id, "profile_seed": profile.seed}, 8), 16) % (2**31)


def _base_result(item, spec: ClaimSpec, state: _State) -> dict:
    claim_id = _claim_id(item)
    module_id = _module_id(item)
    callspec = getattr(item, "callspec", None)
    params = {k: _plain(v) for k, v in (callspec.params.items() if callspec else [])}
    short = claim_id[len(module_id) + 2:] if module_id and claim_id.startswith(module_id + "::") else item.name
    return {
        "claim_id": claim_id,
        "short_id": f"{Path(module_id).stem}::{short}" if module_id else short,
        "module": module_id,
        "family": spec.family,
        "family_size": int(state.family_sizes.get(spec.family, 0)),
        "statement": format_statement(spec.statement, params),
        "statement_template": spec.statement,
        "model": str(params.get("model_name", "")) if params.get("model_name") is not None else "",
        "params": params,
        "settings": {
            "paired": spec.paired,
            "alternative": spec.alternative,
            "min_d": spec.min_d,
            "alpha": spec.effective_alpha(state.alpha),
            "ci_method": state.ci_method,
            "n_resamples": int(state.profile.bootstrap_resamples),
            "seed": _seed(claim_id, state.profile),
        },
        "status": "ok",
        "error": None,
        "comparison": None,
        "metrics": {},
        "samples": None,
        "registration_spec": _registration_spec(item, spec, state),
        "family_members": sorted(cid for members in state.declared.values()
                                 for cid, fam in members.items() if fam == spec.family),
    }


def _registration_spec(item, spec: ClaimSpec, state: _State) -> dict:
    """The claim's spec and hash (emocheck.plugin.spec_hash), computed once per item."""
    from emocheck.plugin.register_hooks import claim_registration_spec

    return claim_registration_spec(item, spec, state)


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _direction(spec: ClaimSpec) -> str:
    if spec.alternative == "less":
        return f"d<-{spec.min_d:g}"
    if spec.alternative == "two-sided":
        return f"|d|>{spec.min_d:g}"
    return f"d>{spec.min_d:g}"


def _verdict_message(comp: dict, spec: ClaimSpec, prefix: str) -> str:
    alpha = comp["alpha"]
    level = 1 - alpha if comp["alternative"] == "two-sided" else 1 - 2 * alpha
    return (
        f"{prefix}: d = {comp['d']:.3f} ({level:.0%} CI [{comp['d_ci_low']:.3f}, {comp['d_ci_high']:.3f}], "
        f"n = {comp['n_treated']}/{comp['n_control']}), p = {_fmt(comp['p_value'])}, "
        f"p({_direction(spec)}) = {_fmt(comp['p_min_effect'])}, alpha = {alpha:g}, "
        f"alternative = {comp['alternative']}"
    )


_PENDING: list[BaseException] = []


def _raise_claim_error() -> None:
    raise _PENDING.pop()


def judge_evidence(ev: Evidence, spec: ClaimSpec, settings: dict):
    """The Comparison of one claim's recorded evidence (a plain function: usable without pytest).

    ``kind='samples'``: :func:`emocheck.stats.compare`; ``'directions'``:
    :func:`emocheck.stats.compare_directions`; ``'vs_null'``: :func:`emocheck.stats.compare_to_null`.
    """
    from emocheck.stats import compare, compare_directions, compare_to_null

    common = dict(alternative=spec.alternative, min_d=spec.min_d, alpha=settings["alpha"])
    if ev.kind == "directions":
        control = [[float("nan") if v is None else v for v in row] for row in ev.control]
        return compare_directions(ev.treated, control, **common)
    if ev.kind == "vs_null":
        return compare_to_null(ev.observed, ev.null, **common)
    return compare(
        ev.treated, ev.control, paired=spec.paired, ci_method=settings["ci_method"],
        n_resamples=settings["n_resamples"], seed=settings["seed"], **common,
    )


def _judge(item, spec: ClaimSpec, state: _State) -> tuple[dict, BaseException | None]:
    """Compute the claim's statistics from its evidence; return (result, exception to report)."""
    from emocheck.stats import verdict, Comparison

    result = _base_result(item, spec, state)
    ev = item.stash.get(EVIDENCE_KEY, None)
    if ev is None or not ev.recorded:
        how = "call evidence.record(treated=..., control=...)" if ev is not None else \
            "request the `evidence` fixture and call evidence.record(treated=..., control=...)"
        msg = f"claim test finished without recording evidence: {how}"
        result.update(status="error", error=msg)
        return result, EvidenceError(msg)
    result["metrics"] = dict(ev.metrics)
    result["kind"] = ev.kind
    if ev.kind == "vs_null":
        result["samples"] = {"observed": ev.observed, "null": ev.null}
    else:
        result["samples"] = {"treated": ev.treated, "control": ev.control, "sample_ids": ev.sample_ids}
    s = result["settings"]
    try:
        comp = judge_evidence(ev, spec, s)
    except (EvidenceError, ValueError) as exc:
        msg = f"cannot judge the claim: {exc}"
        result.update(status="error", error=msg)
        return result, EvidenceError(msg)
    # Design numbers (direction rank and permutation p, null rank, tau...) travel as metrics; a
    # metric the test recorded itself under the same name wins.
    for key, value in comp.extra.items():
        result["metrics"].setdefault(key, value)
    cdict = comp.to_dict()
    result["comparison"] = cdict
    raw = verdict(Comparison.from_dict(cdict), comp.p_value, comp.p_min_effect)
    result["verdict_uncorrected"] = raw
    props = [
        ("emocheck_family", spec.family),
        ("emocheck_d", f"{comp.d:.6g}"),
        ("emocheck_d_ci", f"[{comp.d_ci_low:.6g}, {comp.d_ci_high:.6g}]"),
        ("emocheck_p_raw", f"{comp.p_value:.6g}"),
        ("emocheck_p_min_effect_raw", f"{comp.p_min_effect:.6g}"),
        ("emocheck_verdict_uncorrected", raw),
    ]
    item.user_properties.extend(props)
    if raw != "supported":
        return result, ClaimNotSupported(_verdict_message(cdict, spec, "claim not supported (before any correction)"))
    return result, None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    __tracebackhide__ = True
    state = item.config.stash.get(STATE_KEY, None)
    spec = None
    spec_error = None
    try:
        spec = claim_spec(item) if state is not None else None
    except ConfigError as exc:
        spec_error = exc
    result = None
    if spec is not None and call.when == "call":
        if call.excinfo is None:
            result, exc = _judge(item, spec, state)
            if exc is not None:
                # Raise through a one-line frame so the report shows just the message.
                _PENDING.append(exc)
                try:
                    _raise_claim_error()
                except BaseException:  # noqa: BLE001
                    call.excinfo = pytest.ExceptionInfo.from_current()
        else:
            result = _base_result(item, spec, state)
            value = call.excinfo.value
            if call.excinfo.errisinstance(pytest.skip.Exception):
                result.update(status="skipped", error=str(value) or "skipped")
            elif isinstance(value, EmocheckError):
                result.update(status="error", error=f"{type(value).__name__}: {value}")
            else:
                result.update(status="failed", error=f"{type(value).__name__}: {value}".strip())
    elif spec is not None and call.when == "setup" and call.excinfo is not None:
        result = _base_result(item, spec, state)
        value = call.excinfo.value
        if call.excinfo.errisinstance(pytest.skip.Exception):
            result.update(status="skipped", error=str(value) or "skipped")
        else:
            result.update(status="error", error=f"{type(value).__name__}: {value}")
    elif spec_error is not None and call.when == "setup" and call.excinfo is None:
        _PENDING.append(spec_error)
        try:
            _raise_claim_error()
        except BaseException:  # noqa: BLE001
            call.excinfo = pytest.ExceptionInfo.from_current()

    report = yield
    if call.excinfo is not None and report.failed and isinstance(call.excinfo.value, EmocheckError):
        # errors.py's promise: a user's mistake is shown as its message, not a traceback through
        # the library (which, for a fixture shared by ten claims, ran to hundreds of lines).
        report.longrepr = _short_error(call.excinfo)
    if result is not None:
        report.emocheck = result
        if call.when == "call":
            report.user_properties = list(item.user_properties)
    return report


def pytest_report_teststatus(report, config):
    data = getattr(report, "emocheck", None)
    if data and report.failed and data.get("status") == "error" and report.when == "call":
        return "error", "E", ("ERROR", {"red": True})
    return None


# ----------------------------------------------------------------------------------------------
# Controller: collect, correct, report
# ----------------------------------------------------------------------------------------------


class _SessionPlugin:
    """Controller-side hooks (registered per config, so nested/in-process sessions stay apart)."""

    def __init__(self, config: pytest.Config, state: _State) -> None:
        self.config = config
        self.state = state

    def pytest_runtest_logreport(self, report) -> None:
        data = getattr(report, "emocheck", None)
        if not data or self.state.is_worker:
            return
        self.state.results[data["claim_id"]] = data
        if report.when == "call":
            self.state.reports[data["claim_id"]] = report
            xml = _junit(self.config)
            if xml is not None:
                try:
                    self.state.junit_reporters[data["claim_id"]] = xml.node_reporter(report)
                except Exception:  # noqa: BLE001 - junitxml internals changed: no late properties
                    pass

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        now = time.perf_counter()
        self.state.times["collection"] = now - self.state.t0
        self.state.times["_run_start"] = now
        result = yield
        if not self.state.is_worker and self.state.results:
            _finish(session, self.state)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session) -> None:
        # Per-phase timing is written lazily; an xdist worker writes its file before it reports back, so the
        # controller's session.json sees every worker's phases.
        if self.state.is_worker:
            from emocheck import timing

            timing.flush()

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        _terminal_summary(terminalreporter, self.state)


def _junit(config: pytest.Config):
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover
        return None
    return config.stash.get(xml_key, None)


def _finish(session, state: _State) -> None:
    from emocheck.plugin import report as rep

    results = list(state.results.values())
    rows, families = rep.finalize(results, state.correction)
    state.rows, state.families = rows, families
    settings = state.settings()
    try:
        out_dir = results_dir(state.profile, "statistics")
        from emocheck.plugin.register_hooks import apply_registration, session_json

        state.times["run"] = time.perf_counter() - state.times.pop("_run_start", state.t0)
        apply_registration(state, results, rows, families)
        report_start = time.perf_counter()
        state.paths = rep.write_statistics(results, rows, families, settings, out_dir, session_started=state.started,
                                           registration=state.registration)
        state.times["report"] = time.perf_counter() - report_start
        from emocheck import timing

        timing.flush()
        state.paths["settings"] = session_json(session, state, results, rows, families, out_dir)
        # session.json was rewritten with the provenance record: seal the folder again (manifest, pruning).
        rep.seal_statistics(out_dir, state.paths, results, settings, session_started=state.started)
    except (EmocheckError, OSError) as exc:
        # The preflight checked the folder; it can still fill up or vanish. One message, no INTERNALERROR.
        state.notes.append(f"statistics were NOT written ({type(exc).__name__}: {exc}); "
                           "free space or fix the results folder and run again")
        session.testsfailed += 1
        state.paths = {}
        return
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        rep.append_github_summary(state.paths["report"].read_text(encoding="utf-8"), summary)

    state.late_failures = rep.not_supported_after_correction(rows)
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    lfplugin = session.config.pluginmanager.get_plugin("lfplugin")
    for row in state.late_failures:
        session.testsfailed += 1
        report = state.reports.get(row["claim_id"])
        if report is None:
            continue
        message = (
            f"claim not supported after {state.correction} correction (family {row['family']!r}: "
            f"{row['family_declared']} declared, {row['family_run']} run): p = {rep.fmt_p(row['p_value'])} -> "
            f"{rep.fmt_p(row['p_adjusted'])}, p(d>min_d) = {rep.fmt_p(row['p_min_effect'])} -> "
            f"{rep.fmt_p(row['p_min_effect_adjusted'])}, alpha = {row['alpha']:g}"
        )
        was_passed = report.passed
        report.outcome = "failed"
        report.longrepr = message
        if terminal is not None and was_passed:
            passed = terminal.stats.get("passed", [])
            for i, r in enumerate(passed):
                if r is report:
                    del passed[i]
                    terminal.stats.setdefault("failed", []).append(report)
                    break
        if lfplugin is not None and hasattr(lfplugin, "lastfailed"):
            lfplugin.lastfailed[report.nodeid] = True
    _junit_late_properties(state)

    if state.mlflow:
        from emocheck.plugin.tracking import log_session

        try:
            state.mlflow_run = log_session(state.mlflow_uri, settings, rows, state.paths)
        except Exception as exc:  # noqa: BLE001 - the claims' verdicts stand; say loudly what failed
            state.notes.append(f"MLflow logging to {state.mlflow_uri} failed: {type(exc).__name__}: {exc}")


def _junit_late_properties(state: _State) -> None:
    """Add corrected p-values and final verdicts to the (already finalised) JUnit testcases."""
    if not state.junit_reporters:
        return
    import xml.etree.ElementTree as ET

    late = {r["claim_id"] for r in state.late_failures}
    xml = _junit(state.config) if state.config is not None else None
    for claim_id in late:
        if claim_id in state.junit_reporters and xml is not None and isinstance(getattr(xml, "stats", None), dict):
            xml.stats["failure"] = xml.stats.get("failure", 0) + 1  # the <testsuite failures=...> count
            xml.stats["passed"] = max(0, xml.stats.get("passed", 0) - 1)
    for row in state.rows:
        reporter = state.junit_reporters.get(row["claim_id"])
        if reporter is None:
            continue
        try:
            testcase = reporter.to_xml()
        except Exception:  # noqa: BLE001
            continue
        if not isinstance(testcase, ET.Element):
            continue
        props = testcase.find("properties")
        if props is None:
            props = ET.Element("properties")
            testcase.insert(0, props)
        for name, value in (
            ("emocheck_correction", row["correction"]),
            ("emocheck_family_declared", row["family_declared"]),
            ("emocheck_p_adjusted", f"{row['p_adjusted']:.6g}"),
            ("emocheck_p_min_effect_adjusted", f"{row['p_min_effect_adjusted']:.6g}"),
            ("emocheck_verdict", row["verdict"]),
            ("emocheck_registration", row.get("registration", "-")),
            ("emocheck_registration_changes", row.get("registration_changes", "-")),
            ("emocheck_spec_hash", row.get("spec_hash", "-")),
        ):
            props.append(ET.Element("property", name=name, value=str(value)))
        if row["claim_id"] in late and testcase.find("failure") is None:
            failure = ET.Element("failure", message=f"not supported after {row['correction']} correction")
            failure.text = (f"p_adjusted={row['p_adjusted']:.6g}, "
                            f"p_min_effect_adjusted={row['p_min_effect_adjusted']:.6g}")
            testcase.append(failure)


def _terminal_summary(terminalreporter, state: _State) -> None:
    if state.is_worker:
        return
    if state.preflight_error is not None or not state.paths:
        for note in state.notes:
            terminalreporter.write_line(f"emocheck: {note}", red=True)
        if not state.rows:
            return
    if not state.rows or not state.paths:
        return
    from emocheck.plugin import report as rep

    tr = terminalreporter
    tr.section("emocheck: claims")
    tr.write_line(
        f"profile {state.profile.name} | models {', '.join(state.profile.models)} | correction "
        f"{state.correction} within declared families | alpha {state.alpha:g} (unless a claim sets its own) "
        f"| CI {state.ci_method}"
    )
    tr.write_line(rep.format_table(state.rows))
    tr.write_line(
        "d = Cohen's d (d_z when paired; directions: vs one random direction; null: in null SDs); raw CI at "
        "1-2*alpha for one-sided claims (its relevant end is the one-sided 1-alpha bound), 1-alpha for "
        "two-sided; adj. bound: the same bound at the level the correction used, it must clear min_d; "
        "p corr / p(d>min_d) corr: corrected within the declared family; d80 at a/m: smallest true d "
        "with 80% power under the rule at alpha/m; n for d: n (pairs or per group) for 80% power"
    )
    tr.write_line("")
    tr.write_line("families (declared in the hypothesis modules / run in this session; missing members count as p = 1):")
    tr.write_line(rep.format_families(state.families))
    from emocheck.plugin.register_hooks import registration_summary_lines

    for line, red in registration_summary_lines(state):
        tr.write_line(line, red=red)
    if state.late_failures:
        tr.write_line("")
        for row in state.late_failures:
            tr.write_line(
                f"NOT SUPPORTED after {state.correction} correction: {row['claim_id']} "
                f"(p {rep.fmt_p(row['p_value'])} -> {rep.fmt_p(row['p_adjusted'])}, "
                f"p(d>min_d) {rep.fmt_p(row['p_min_effect'])} -> {rep.fmt_p(row['p_min_effect_adjusted'])})",
                red=True,
            )
    supported = sum(r["verdict"] == "supported" for r in state.rows)
    tr.write_line("")
    tr.write_line(f"{supported} of {len(state.rows)} claims supported; statistics in {state.paths['effect_sizes'].parent}")
    if state.mlflow_run:
        tr.write_line(f"MLflow run {state.mlflow_run} at {state.mlflow_uri}")
    for note in state.notes:
        tr.write_line(f"emocheck: {note}", red=True)
