"""A claim's specification as data: one canonical serialisation, one hash per claim and per family.

A claim spec holds everything that decides its verdict and that a researcher could be tempted to
change after a first look at the results:

* what the ``@claim`` marker declares: statement (formatted with the test's parameters), family,
  direction (``alternative``), ``min_d``, ``alpha`` (declared and effective), ``paired``;
* what ``@design(...)`` declares, when the claim declares it: controls and their counts, the
  position / site / layer rule, the data files it reads;
* the session's analysis choices: correction, CI method;
* the profile's sizes and seeds (not its model list: which models run is the family membership);
* the content hashes of the data files the claim reads;
* the code version of the analysis: the source of the test function, of the project functions and
  fixtures it reaches (helpers in the hypothesis module, fixtures in ``fixtures/``), the values of
  the module-level constants they use, and the file hash of every ``emocheck`` module they reach
  (transitively; ``emocheck.plugin`` is the harness and is recorded in session.json instead).

Everything here is plain functions over plain data; ``emocheck.plugin.preregistration`` compares
specs with the lock and ``emocheck.plugin.hooks`` calls :func:`item_spec` for a collected test.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from emocheck.errors import ConfigError

DESIGN_MARKER = "emocheck_design"
SPEC_VERSION = 1
_HARNESS = "emocheck.plugin"
_MAX_WALK = 2000  # functions visited per claim; a safety bound, far above what a claim reaches

__all__ = ["DESIGN_MARKER", "canonical_json", "spec_hash", "design", "data_hashes", "code_units",
           "build_spec", "item_spec", "family_hash", "flatten", "diff_specs"]


def canonical_json(obj: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(canonical_json(spec).encode("ascii")).hexdigest()


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise ConfigError(f"{where}: {type(value).__name__} is not plain data (use numbers, strings, lists, dicts)")


def design(*, controls: dict | None = None, position: str | None = None, site: str | None = None,
           layer_rule: str | None = None, data: Iterable[str] | None = None, **other):
    """Declare the parts of a claim's design that the marker does not hold; returns a marker.

        @design(controls={"random_directions": 20}, position="last", site="blocks.{layer}.hook_resid_post",
                layer_rule="max train d on training prompts", data=["emotion_prompts.csv"])
        @claim("...", family="q1")
        def test_x(...): ...

    Every value becomes part of the claim's spec hash; ``data`` (file names relative to the data
    folder) replaces the automatic detection of the data files the claim reads.
    """
    fields = {"controls": controls, "position": position, "site": site, "layer_rule": layer_rule,
              "data": sorted(data) if data is not None else None, **other}
    clean = {k: _plain(v, f"@design({k}=...)") for k, v in fields.items() if v is not None}
    return getattr(pytest.mark, DESIGN_MARKER)(**clean)


# ----------------------------------------------------------------------------------------------
# Data files
# ----------------------------------------------------------------------------------------------

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_HASHES[key]


def data_files(root: Path) -> list[str]:
    """Every data file under the data folder, as posix paths relative to it (hidden files and the
    Markdown documentation skipped)."""
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix != ".md" and not p.name.endswith(".lock")
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def data_hashes(root: Path, names: Iterable[str]) -> dict[str, str]:
    """{relative name: sha256} for the named data files ("missing" where a file does not exist)."""
    out = {}
    for name in sorted(set(names)):
        path = root / name
        out[name] = _sha256(path) if path.is_file() else "missing"
    return out


# ----------------------------------------------------------------------------------------------
# Code version
# ----------------------------------------------------------------------------------------------


def _is_emocheck(modname: str | None) -> bool:
    return bool(modname) and (modname == "emocheck" or modname.startswith("emocheck."))


def _is_harness(modname: str | None) -> bool:
    return bool(modname) and (modname == _HARNESS or modname.startswith(_HARNESS + "."))


def _is_project(obj: Any, project_root: Path | None) -> bool:
    """A function/class defined in a source file under the project root (hypotheses, fixtures)."""
    modname = getattr(obj, "__module__", None)
    if _is_emocheck(modname):
        return False
    try:
        path = Path(inspect.getsourcefile(obj) or "").resolve()
    except (TypeError, OSError):
        return False
    if project_root is None or "site-packages" in path.parts:
        return False
    return path.is_relative_to(project_root)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() if code is not None else repr(obj)


def _normalised_source(obj: Any, src: str | None = None) -> str:
    """The function's or class's code without its decorators, comments and layout (``ast.unparse``):
    the ``@claim``/``@design`` arguments are spec fields of their own, and a reformatting is no change."""
    import ast
    import textwrap

    src = _source(obj) if src is None else src
    try:
        tree = ast.parse(textwrap.dedent(src))
    except SyntaxError:
        return src
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
            return ast.unparse(node)
    return src


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _constant(value: Any) -> Any:
    """A module-level constant as plain data, or None when it is not a small plain value."""
    try:
        plain = _plain(value, "constant")
    except ConfigError:
        return None
    text = canonical_json(plain)
    return plain if len(text) <= 2000 else {"sha256": hashlib.sha256(text.encode()).hexdigest()}


def _import(name: str) -> types.ModuleType | None:
    import importlib

    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - an optional dependency missing: that module is not part of the closure
        return None


def _static_imports(mod: types.ModuleType) -> set[str]:
    """The emocheck modules a module's source imports (anywhere in it, lazy imports included).

    Read from the source, not from ``vars(mod)``: a package's namespace also holds every submodule
    that happens to be imported already, which would make the hash depend on import order.
    """
    path = getattr(mod, "__file__", None)
    if not path or not Path(path).is_file():
        return set()
    st = Path(path).stat()
    memo_key = (mod.__name__, str(path), st.st_size, st.st_mtime_ns)  # an edited file is parsed again
    if memo_key in _IMPORTS_MEMO:
        return _IMPORTS_MEMO[memo_key]
    _IMPORTS_MEMO[memo_key] = found = _parse_imports(mod, path)
    return found


_IMPORTS_MEMO: dict[tuple, set[str]] = {}


def _parse_imports(mod: types.ModuleType, path: str) -> set[str]:
    import ast
    import importlib.util

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return set()
    package = mod.__name__ if hasattr(mod, "__path__") else mod.__name__.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                try:
                    if _is_emocheck(full) and importlib.util.find_spec(full) is not None:
                        found.add(full)
                except (ImportError, ValueError):
                    pass
    return {n for n in found if _is_emocheck(n)}


def _emocheck_module_closure(names: set[str]) -> set[str]:
    """The emocheck modules reachable from ``names`` through their imports (read from the source)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or _is_harness(name) or not _is_emocheck(name):
            continue
        mod = _import(name)
        if mod is None:
            continue
        seen.add(name)
        todo.extend(n for n in _static_imports(mod) if n not in seen)
        if "." in name:
            todo.append(name.rsplit(".", 1)[0])  # importing a submodule runs its package's __init__
    return seen


def _module_file_hash(name: str) -> str:
    path = getattr(sys.modules.get(name), "__file__", None)
    return _sha256(Path(path)) if path and Path(path).is_file() else "no-source"


@dataclass(frozen=True)
class _ObjectInfo:
    obj: Any                   # held so that the id keying the memo is never reused
    project: bool
    source: str
    source_hash: str | None    # sha256 of the normalised source (project objects only)
    names: frozenset | None    # the names its code reads (None: neither a function nor a class)


_OBJECT_MEMO: dict[tuple[int, str], _ObjectInfo] = {}


def _object_info(obj: Any, project_root: Path | None) -> _ObjectInfo:
    """What the walk of `code_units` needs from one function or class, computed once per object and
    process. Every claim of a session walks the same few hundred functions (the 443 claims of a ci run
    spent 37 s re-reading and re-parsing their source); a function's source is read when it is first
    reached, which is the code that runs, since a module is not recompiled when its file changes. The
    emocheck module files are still hashed on every call (by stat), so an edited module is seen."""
    key = (id(obj), str(project_root))
    hit = _OBJECT_MEMO.get(key)
    if hit is not None and hit.obj is obj:
        return hit
    project = _is_project(obj, project_root)
    if not project and not _is_emocheck(getattr(obj, "__module__", None)):
        # outside the closure (torch, numpy, ...): code_units skips it, so its source is never read
        info = _ObjectInfo(obj, False, "", None, None)
        _OBJECT_MEMO[key] = info
        return info
    source = _source(obj)
    source_hash = hashlib.sha256(_normalised_source(obj, source).encode()).hexdigest() if project else None
    codes = None
    if inspect.isclass(obj):
        codes = [v.__code__ for v in vars(obj).values() if hasattr(v, "__code__")]
    elif hasattr(obj, "__code__"):
        codes = [obj.__code__]
    names = None if codes is None else frozenset().union(*(_code_names(c) for c in codes))
    info = _ObjectInfo(obj, project, source, source_hash, names)
    _OBJECT_MEMO[key] = info
    return info


def code_units(functions: Iterable[Callable], project_root: Path | None) -> tuple[dict[str, Any], set[str]]:
    """The code version of the analysis reached from ``functions``, and the source text it reached.

    Returns (units, sources): units maps ``module:qualname`` of project functions to the sha256 of
    their source, ``module:NAME`` of the constants they read to the value, and
    ``emocheck/<path>.py`` of every emocheck module reached to its file hash. ``sources`` are the
    source texts of every function visited (project and emocheck), used to find the data files.
    """
    units: dict[str, Any] = {}
    emocheck_modules: set[str] = set()
    sources: list[str] = []
    seen: set[int] = set()
    todo = list(functions)
    while todo and len(seen) < _MAX_WALK:
        obj = todo.pop()
        if inspect.isfunction(obj):
            obj = inspect.unwrap(obj)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        modname = getattr(obj, "__module__", None)
        if _is_harness(modname):
            continue
        info = _object_info(obj, project_root)
        project = info.project
        if not project and not _is_emocheck(modname):
            continue
        sources.append(info.source)
        if project:
            units[f"{modname}:{getattr(obj, '__qualname__', repr(obj))}"] = info.source_hash
        else:
            emocheck_modules.add(modname)
        if info.names is None:
            continue
        names = info.names
        if inspect.isclass(obj):
            glb = vars(sys.modules[modname]) if modname in sys.modules else {}
        else:
            glb = obj.__globals__
        # a function-level `from emocheck.x import y` leaves "emocheck.x" and "y" in co_names
        lazy = [m for m in (_import(n) for n in sorted(names) if _is_emocheck(n) and not _is_harness(n)) if m]
        emocheck_modules |= {m.__name__ for m in lazy}
        for name in sorted(names):
            candidates = [glb[name]] if name in glb else []
            candidates += [getattr(m, name) for m in lazy if hasattr(m, name)]
            for value in candidates:
                if isinstance(value, types.ModuleType):
                    if _is_emocheck(value.__name__):
                        emocheck_modules.add(value.__name__)
                elif inspect.isfunction(value) or inspect.isclass(value):
                    todo.append(value)
                elif project and not callable(value):
                    const = _constant(value)
                    if const is not None:
                        units[f"{modname}:{name}"] = const
                elif callable(value) and _is_emocheck(getattr(value, "__module__", None)):
                    emocheck_modules.add(value.__module__)
    for name in sorted(_emocheck_module_closure(emocheck_modules)):
        path = getattr(sys.modules.get(name), "__file__", None) or name
        try:
            key = Path(path).resolve().relative_to(Path(sys.modules["emocheck"].__file__).resolve().parent.parent).as_posix()
        except ValueError:
            key = name
        units[key] = _module_file_hash(name)
    return units, set(sources)


def data_used(sources: Iterable[str], available: list[str]) -> list[str]:
    """Data files whose name appears in the reached source (all files when none does: conservative)."""
    text = "\n".join(sources)
    used = [name for name in available if Path(name).name in text]
    return used or list(available)


# ----------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------


def build_spec(*, claim: dict, params: dict, design_fields: dict, analysis: dict, profile: dict,
               data: dict, code: dict) -> dict:
    """The spec of one claim from its parts (plain data; see the module docstring)."""
    return {
        "version": SPEC_VERSION,
        "claim": _plain(claim, "claim"),
        "params": _plain(params, "params"),
        "design": _plain(design_fields, "design"),
        "analysis": _plain(analysis, "analysis"),
        "profile": _plain(profile, "profile"),
        "data": dict(sorted(data.items())),
        "code": _plain(code, "code"),
    }


def design_of(item) -> dict:
    mark = item.get_closest_marker(DESIGN_MARKER)
    return dict(mark.kwargs) if mark is not None else {}


def fixture_functions(item) -> list[Callable]:
    info = getattr(item, "_fixtureinfo", None)
    funcs = []
    for defs in (getattr(info, "name2fixturedefs", {}) or {}).values():
        for fixturedef in defs:
            func = getattr(fixturedef, "func", None)
            if func is not None:
                funcs.append(func)
    return funcs


def item_spec(item, *, statement: str, spec, effective_alpha: float, params: dict, analysis: dict,
              profile: dict, data_root: Path, project_root: Path | None) -> dict:
    """The spec of a collected claim test (``spec`` is its ClaimSpec); returns {"spec", "hash"}."""
    design_fields = design_of(item)
    code, sources = code_units([item.function, *fixture_functions(item)], project_root)
    names = design_fields.get("data")
    if names is None:
        names = data_used(sources, data_files(data_root))
    s = build_spec(
        claim={"statement": statement, "statement_template": spec.statement, "family": spec.family,
               "direction": spec.alternative, "min_d": spec.min_d, "alpha_declared": spec.alpha,
               "alpha": effective_alpha, "paired": spec.paired},
        params=params, design_fields=design_fields, analysis=analysis, profile=profile,
        data=data_hashes(data_root, names), code=code,
    )
    return {"spec": s, "hash": spec_hash(s)}


def family_hash(members: dict[str, str]) -> str:
    """Hash of a family: its member claim ids and their spec hashes ({claim_id: hash})."""
    return spec_hash({"members": dict(sorted(members.items()))})


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"claim.min_d": 0.5, "code.emocheck/stats/core.py": "ab..", ...}: the fields a diff names."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if prefix in ("code", "data"):  # their keys contain dots (file names): do not split further
                out[key] = v
            else:
                out.update(flatten(v, key))
        return out
    return {prefix: obj}


def diff_specs(old: dict, new: dict) -> list[dict]:
    """The fields that differ: [{"field", "from", "to"}], absent values as None, sorted by field."""
    a, b = flatten(old), flatten(new)
    return [{"field": k, "from": a.get(k), "to": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
