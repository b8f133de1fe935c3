"""The import graph of emocheck/, read from the source with ast (nothing is imported; imports inside
functions count too): no cycle between modules, and every arrow between the package's parts runs
downward in the layer order below (a part may import its own modules and anything in a lower layer,
or a part of its own layer)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emocheck"

#: Lowest first. A part is a top-level module or subpackage of emocheck (`__init__` is the package's
#: own module: the public names, re-exported from the plugin).
LAYERS = (
    ("errors",),
    ("filelocks", "progress", "extensions"),      # locks, progress bars, loading other packages' plugins
    ("atomic",),                                  # atomic writes
    ("timing",),                                  # phase timing (writes its files atomically)
    ("storage",),                                 # artefacts: checksummed, verified, locked
    ("shipped",),                                 # the repository's own files, checked against their digests
    ("profiles", "dataset", "study", "compute",   # configuration, data, the study, compute plans,
     "shuffled_labels"),                          # the label-shuffled dataset of the end-to-end null
    ("stats",),                                   # pure statistics
    ("models", "testing"),                        # loading models; tiny random models for tests
    ("evaluators",),                              # text instruments
    ("representations",),                         # phases 2-3: activations, vectors
    ("patching", "export"),                       # phase 5 and the generation engine; vectors out
    ("heads",),                                   # phases 6-7
    ("circuits", "alignment", "breakdown"),       # phase 8, phase 4, time breakdown of a run
    ("plugin", "caches", "nulls_catalogue"),      # the pytest plugin, the cache commands, the nulls' catalogue
    ("cli", "__init__"),                          # the command line and the package's public names
)


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file for every .py under `root` (a package folder)."""
    out = {}
    for f in root.rglob("*.py"):
        rel = f.relative_to(root.parent).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return out


def _targets(mods: dict[str, Path], current: str, node) -> set[str]:
    pkg = next(iter(mods)).split(".")[0]
    names = set()
    if isinstance(node, ast.Import):
        names = {a.name for a in node.names if a.name.split(".")[0] == pkg}
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = current.split(".")
            base = base if mods[current].name == "__init__.py" else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != pkg:
            return set()
        names = {f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names}
    found = set()
    for name in names:      # `import a.b.c` of a name inside a module: the module
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = module_files(root)
    graph = {}
    for name, f in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= _targets(mods, name, node)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan, iterative). A subpackage's
    `__init__` that re-exports its own submodules is not a cycle with them."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    root = min(graph, key=len)
    return [c for c in out if not (c[0] != root and all(m == c[0] or m.startswith(c[0] + ".") for m in c))]


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_arrows(graph: dict[str, set[str]], layers) -> list[str]:
    level = {part: i for i, layer in enumerate(layers) for part in layer}
    bad = []
    for src, deps in sorted(graph.items()):
        for dst in sorted(deps):
            a, b = part_of(src), part_of(dst)
            if a != b and level[b] > level[a]:
                bad.append(f"{src} -> {dst} ({a} is below {b})")
    return bad


def test_every_part_has_a_layer():
    parts = {part_of(m) for m in module_files(PACKAGE)}
    layered = {p for layer in LAYERS for p in layer}
    assert parts <= layered, f"parts without a layer: {sorted(parts - layered)}; add them to LAYERS"
    assert len(layered) == sum(map(len, LAYERS)), "a part is in two layers"


def test_no_import_cycles():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_only_go_down():
    bad = upward_arrows(import_graph(PACKAGE), LAYERS)
    assert not bad, "imports that run upward:\n" + "\n".join(bad)


def test_the_checks_find_a_planted_cycle_and_an_upward_arrow(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from toy.low.a import f\n")      # re-export: not a cycle
    (pkg / "low" / "a.py").write_text("def f():\n    from toy.high import g\n")  # upward, inside a function
    (pkg / "high.py").write_text("from toy.low import a\nfrom .mid import h\ndef g(): pass\n")
    (pkg / "mid.py").write_text("import toy.high\ndef h(): pass\n")
    graph = import_graph(pkg)
    assert graph["toy.low.a"] == {"toy.high"} and graph["toy.mid"] == {"toy.high"}
    assert sorted(map(tuple, cycles(graph))) == [("toy.high", "toy.low.a", "toy.mid")]
    layers = (("low",), ("mid",), ("high",), ("__init__",))
    assert upward_arrows(graph, layers) == ["toy.low.a -> toy.high (low is below high)",
                                            "toy.mid -> toy.high (mid is below high)"]


@pytest.mark.parametrize("private", ["fixtures", "hypotheses", "emocheck"])
def test_no_private_names_imported_across_packages(private):
    """`from emocheck.x import _name` only from inside emocheck.x's own part (the plugin's private
    state stays the plugin's; tests may reach in)."""
    root = PACKAGE.parent / private
    bad = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        here = part_of(".".join(rel.parts)) if rel.parts[0] == "emocheck" else rel.parts[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("emocheck.") and not node.level:
                there = part_of(node.module)
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if names and there != here:
                    bad.append(f"{rel}: from {node.module} import {', '.join(names)}")
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)
