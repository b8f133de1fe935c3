"""Options, ini keys and configuration: resolving the profile, correction, alpha, results root and
data files once per session, and handing them to xdist workers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from emocheck.plugin.claims import MARKER
from emocheck.errors import ConfigError, DatasetError
from emocheck.profiles import get_profile

from emocheck.plugin.collection import _LoadgroupShim
from emocheck.plugin.compare import FAIL_ON
from emocheck.plugin.controller import _SessionPlugin
from emocheck.plugin.state import CI_METHODS, CORRECTIONS, ENV_PROFILE, ENV_RESULTS, STATE_KEY, WORKERINPUT_RESULTS, _State


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
    group.addoption("--emocheck-registration-status", action="store_true", default=False,
                    help="compare every collected claim's spec with the preregistration lock and print each "
                         "status (pre-registered / changed / exploratory); runs no claim, writes nothing")
    group.addoption("--emocheck-preregistration", default=None, metavar="FILE",
                    help="the preregistration lock (default: ini emocheck_preregistration, <rootdir>/preregistration.json)")
    group.addoption("--emocheck-fail-on", default=None, choices=FAIL_ON,
                    help="which verdicts fail the run: refuted (default), inconclusive (everything not supported), "
                         "changed (only verdicts that regress against --emocheck-baseline; the default with a baseline)")
    group.addoption("--emocheck-baseline", default=None, metavar="PATH",
                    help="a previous run's results/<profile>/statistics/session.json (or the preregistration lock "
                         "with expected verdicts): list verdict changes first and, by default, fail only on them")
    parser.addini("emocheck_fail_on", "refuted | inconclusive | changed (default: refuted; changed with a baseline)",
                  default="")
    parser.addini("emocheck_baseline", "baseline session.json (relative to the ini file)", default="")
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
    state.registration_status = bool(opt("--emocheck-registration-status"))
    if state.preregister_force and not state.preregister:
        raise pytest.UsageError("--emocheck-preregister-force only goes with --emocheck-preregister")
    if state.registration_status and state.preregister:
        raise pytest.UsageError("--emocheck-registration-status only reads the lock; drop --emocheck-preregister")
    if state.preregister or state.registration_status:
        # pytest's --lf skips, at collection, every file without a recorded failure: a lock written (or
        # a status checked) then would silently leave out the claims of those files.
        narrowing = [flag for flag, dest in CACHE_SELECTION_OPTIONS if opt(dest, None)]
        if narrowing:
            which = "--emocheck-preregister" if state.preregister else "--emocheck-registration-status"
            raise pytest.UsageError(f"{which} must see every claim; drop {', '.join(narrowing)} (they select "
                                    "the claims of the last run, and skip whole files at collection)")
    if opt("--emocheck-preregistration"):
        lock = Path(config.invocation_params.dir, opt("--emocheck-preregistration"))
    elif config.getini("emocheck_preregistration"):
        base = config.inipath.parent if config.inipath else config.rootpath
        lock = Path(base, config.getini("emocheck_preregistration"))
    else:
        lock = config.rootpath / "preregistration.json"
    state.prereg_path = lock.resolve()
    _resolve_policy(config, state)
    if ((state.preregister or state.registration_status) and (getattr(config.option, "numprocesses", None) or 0)
            and not state.is_worker):
        flag = "--emocheck-preregister" if state.preregister else "--emocheck-registration-status"
        raise pytest.UsageError(f"{flag} runs no claim and collects in one process; drop -n")
    return state


def _resolve_policy(config: pytest.Config, state: _State) -> None:
    """--emocheck-baseline (read now: a bad file is one clear error before any claim runs) and
    --emocheck-fail-on (default: refuted; changed when a baseline is given)."""
    from emocheck.plugin.compare import BaselineError, load_verdicts

    opt = config.getoption
    if opt("--emocheck-baseline"):
        state.baseline_path = Path(config.invocation_params.dir, opt("--emocheck-baseline")).resolve()
    elif config.getini("emocheck_baseline"):
        base = config.inipath.parent if config.inipath else config.rootpath
        state.baseline_path = Path(base, config.getini("emocheck_baseline")).resolve()
    if state.baseline_path is not None:
        try:
            state.baseline = load_verdicts(state.baseline_path, state.profile.name)
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    policy = opt("--emocheck-fail-on") or config.getini("emocheck_fail_on") or (
        "changed" if state.baseline is not None else "refuted")
    if policy not in FAIL_ON:
        raise pytest.UsageError(f"emocheck_fail_on = {policy!r}; choose one of {', '.join(FAIL_ON)}")
    if policy == "changed" and state.baseline is None:
        raise pytest.UsageError("--emocheck-fail-on changed needs a baseline: pass --emocheck-baseline "
                                "results/<profile>/statistics/session.json of an earlier run")
    state.fail_on = policy


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


# pytest's cacheprovider options that select or reorder tests from the last run: (flag, dest).
CACHE_SELECTION_OPTIONS = (("--lf", "lf"), ("--ff", "failedfirst"), ("--nf", "newfirst"), ("--sw", "stepwise"),
                           ("--sw-skip", "stepwise_skip"))


def alias_xdist_lastfailed(config: pytest.Config) -> None:
    """Make ``--lf`` find the claims a ``-n N`` run recorded as failed when this run has no workers.

    Under ``--dist loadgroup`` the reports' node ids carry xdist's ``@<group>`` suffix, so that is how
    the cacheprovider records them; a run without ``-n`` collects the ids without the suffix and would
    find no previous failure (and rerun everything). Each suffixed entry gets its plain id beside it."""
    lfplugin = config.pluginmanager.get_plugin("lfplugin")
    lastfailed = getattr(lfplugin, "lastfailed", None)
    if not isinstance(lastfailed, dict):
        return
    for nodeid in list(lastfailed):
        base, sep, group = str(nodeid).rpartition("@")
        if sep and base.endswith("]") and group and not any(c in group for c in "[]/:"):
            # pytest >= 9.2 keys the cache by NodeId objects, earlier versions by strings
            parse = getattr(type(nodeid), "parse", None)
            try:
                key = parse(base) if parse is not None and not isinstance(nodeid, str) else base
            except Exception:  # noqa: BLE001 - an id pytest cannot parse back is left as it was
                continue
            lastfailed.setdefault(key, lastfailed[nodeid])


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
    alias_xdist_lastfailed(config)
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
    if not state.is_worker and not os.environ.get("EMOCHECK_RUN_ID"):
        # One run id for the controller and its xdist workers (they inherit the environment), so the
        # session's timing summary adds up every process of THIS session and no other.
        import uuid

        state.env_backup["EMOCHECK_RUN_ID"] = None
        os.environ["EMOCHECK_RUN_ID"] = f"session-{uuid.uuid4().hex[:12]}"
    state.config = config
    config.stash[STATE_KEY] = state
    remote = config.getoption("--emocheck-remote", None)      # nnsight remote execution (speed)
    if remote:
        state.env_backup.setdefault("EMOCHECK_REMOTE", os.environ.get("EMOCHECK_REMOTE"))
        os.environ["EMOCHECK_REMOTE"] = remote
    config.pluginmanager.register(_SessionPlugin(config, state), f"emocheck-session-{id(config)}")
    from emocheck.plugin.timing_hooks import TimingPlugin      # per-test phases (run-time breakdown)

    config.pluginmanager.register(TimingPlugin(), f"emocheck-timing-{id(config)}")
    if state.preregister and not state.is_worker:
        from emocheck.plugin.register_hooks import PreregisterPlugin

        config.pluginmanager.register(PreregisterPlugin(config, state), f"emocheck-preregister-{id(config)}")
    if state.registration_status and not state.is_worker:
        from emocheck.plugin.register_hooks import RegistrationStatusPlugin

        config.pluginmanager.register(RegistrationStatusPlugin(config, state), f"emocheck-regstatus-{id(config)}")
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
        f"results {state.results_root / state.profile.name / 'statistics'}, fails on {state.fail_on}"
        + (f" against {state.baseline_path}" if state.baseline_path else "")
    ]
