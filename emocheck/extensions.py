"""Extension points: architecture maps and evaluators from other packages, through entry points.

A package adds to emocheck without editing it by declaring entry points (pyproject.toml):

    [project.entry-points."emocheck.architectures"]
    mymodel = "my_pkg.emocheck_maps:MYMODEL_MAP"       # name: the HF config.model_type it maps

    [project.entry-points."emocheck.evaluators"]
    my-judge = "my_pkg.judge:make_judge"               # name: the evaluator name get_evaluator takes

An architecture entry point loads to an ``ArchitectureMap`` (or a zero-argument callable returning
one); an evaluator entry point loads to a zero-argument factory returning an ``Evaluator`` (a class
works). Entry points are loaded lazily: only when emocheck meets a model_type or an evaluator name it
does not know, and then only the entry point of that name, so a broken plugin troubles no one who
does not use it, and whoever does gets one error naming the entry point and its distribution.

Both also have a plain registration API for code that runs before the models load (a conftest.py,
a notebook): ``emocheck.models.architectures.register_architecture`` and
``emocheck.evaluators.register_evaluator``.
"""
from __future__ import annotations

import threading
from importlib import metadata

from emocheck.errors import ConfigError

ARCHITECTURES_GROUP = "emocheck.architectures"
EVALUATORS_GROUP = "emocheck.evaluators"

_LOCK = threading.RLock()
_LOADED: set[tuple[str, str]] = set()


def entry_points(group: str) -> list[metadata.EntryPoint]:
    """The installed entry points of `group` (read from the distributions' metadata, not imported)."""
    found = metadata.entry_points()
    selected = found.select(group=group) if hasattr(found, "select") else found.get(group, [])
    return sorted(selected, key=lambda ep: (ep.name, ep.value))


def names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group)})


def _describe(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    who = f" from {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group}{who})"


def _load(ep: metadata.EntryPoint):
    try:
        return ep.load()
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import is reported the same way
        raise ConfigError(f"the {_describe(ep)} failed to load: {type(exc).__name__}: {exc}. Fix or uninstall "
                          "that package (pip uninstall ...)") from exc


def load_once(group: str, name: str, register) -> bool:
    """Load the one installed entry point `name` of `group` and hand the loaded object to
    `register(obj, describe)` (which checks its type and registers it; `describe` names the entry point
    for its errors). False when no installed package declares it; True once registered (later calls do
    not load it again). The callers sit beside their registries (emocheck.models.architectures,
    emocheck.evaluators.registry), so this module depends on nothing of emocheck but its errors."""
    with _LOCK:
        candidates = [ep for ep in entry_points(group) if ep.name == name]
        if not candidates:
            return False
        if len(candidates) > 1:
            raise ConfigError(f"several installed packages declare {name!r} in {group}: "
                              + "; ".join(_describe(ep) for ep in candidates) + ". Uninstall all but one")
        ep = candidates[0]
        if (ep.group, ep.name) in _LOADED:
            return True
        register(_load(ep), _describe(ep))
        _LOADED.add((ep.group, ep.name))
        return True


def forget_loaded() -> None:
    """Let the next lookup load entry points again (tests install and remove plugins)."""
    with _LOCK:
        _LOADED.clear()
