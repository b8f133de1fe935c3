"""docs/nulls.md is the rendering of emocheck.nulls_catalogue, which lists every claim family of
hypotheses/, and every simulation it names exists."""
import ast
import re
from pathlib import Path

from emocheck.nulls_catalogue import FAMILIES, by_family, render_markdown

ROOT = Path(__file__).resolve().parent.parent


def _declared_families() -> dict[str, str]:
    """family -> module, from the @claim(..., family=...) calls of hypotheses/ (names resolved)."""
    out = {}
    for path in sorted((ROOT / "hypotheses").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "claim":
                for kw in node.keywords:
                    if kw.arg == "family":
                        value = kw.value.value if isinstance(kw.value, ast.Constant) else consts[kw.value.id]
                        out[value] = f"hypotheses/{path.name}"
    return out


def test_every_family_is_catalogued_once_with_its_module():
    declared = _declared_families()
    assert len(declared) >= 30
    catalogued = by_family()
    assert len(catalogued) == len(FAMILIES), "a family is listed twice"
    assert sorted(declared) == sorted(catalogued)
    for family, module in declared.items():
        assert catalogued[family].module == module, family


def test_every_entry_is_complete_and_its_simulations_exist():
    for f in FAMILIES:
        assert f.status in ("calibrated", "rule only", "known gap"), f.family
        assert f.asserts and f.alternative and f.simulation, f.family
        assert f.emotion or f.why_not_emotion, f"{f.family}: say why it does not assert emotion structure"
        assert f.status != "known gap" or f.closed_by, f"{f.family}: a known gap names what closes it"
        for file, test in re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", f.simulation):
            source = (ROOT / file).read_text()
            assert f"def {test}(" in source, f"{f.family}: {file}::{test} does not exist"


def test_the_docs_page_is_the_catalogue():
    assert (ROOT / "docs" / "nulls.md").read_text() == render_markdown(), \
        "regenerate: python -m emocheck.nulls_catalogue > docs/nulls.md"
