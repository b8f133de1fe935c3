"""Fixtures, model parametrisation and collection: declared family members are counted before any
``-k``/``-m`` selection; the preflight checks inputs before any work; the xdist loadgroup shim."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emocheck.plugin.claims import MARKER, Evidence, claim_spec
from emocheck.errors import ConfigError, EmocheckError, EvidenceError
from emocheck.profiles import Profile

from emocheck.plugin.state import CLAIM_ID_KEY, EVIDENCE_KEY, STATE_KEY, _State, _state


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
    _check_null_floors(state, sizes)
    claims = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if claims:
        _preflight(state, claims)


def resolve_null_draws(declared, profile: Profile) -> int:
    """A claim's declared null_draws: the int, or 'module:function' called with the profile."""
    if isinstance(declared, int):
        return declared
    import importlib

    module, _, name = declared.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"null_draws={declared!r}: cannot import it ({exc})") from None
    return int(fn(profile))


def _check_null_floors(state: _State, sizes: Counter) -> None:
    """A family judged against K null draws that no data could support is a usage error, now."""
    from emocheck.stats.nulls import unsupportable_reason

    problems, resolved = [], {}
    for members in state.declared.values():
        for nodeid, family in members.items():
            item = state.declared_items.get(nodeid)
            spec = claim_spec(item) if item is not None else None
            if spec is None or spec.null_draws is None or family in resolved:
                continue
            try:
                k = resolve_null_draws(spec.null_draws, state.profile)
            except ConfigError as exc:
                raise pytest.UsageError(f"emocheck: {nodeid}: {exc}") from None
            resolved[family] = k
            why = unsupportable_reason(sizes[family], k, spec.effective_alpha(state.alpha))
            if why:
                problems.append(f"  family {family!r} (profile {state.profile.name!r}): {why}")
    if problems:
        raise pytest.UsageError("emocheck: a claim family can never be supported:\n" + "\n".join(problems))


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
    library = Path(__file__).resolve().parents[1]        # the emocheck package folder
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
