"""The documentation stays true: the README's and docs/' code blocks that are marked to run do run,
every relative link resolves, the CI workflow says what docs/ci.md says it does, and the site builds
with `mkdocs build --strict`.

A fenced block is marked by an HTML comment on the line before it (invisible on GitHub and in the site):

    <!-- docs-test: run -->            python: a fresh interpreter; bash: `bash -euo pipefail`; must exit 0
    <!-- docs-test: claim -->          python: a claim module, run with pytest on a tiny random model;
                                       every claim must reach a verdict (supported or not), none an error
    <!-- docs-test: no-run (why) -->   not run; the reason is the skip reason

Every python / bash block is a test case of its own: marked ones run, `no-run` and unmarked ones are
reported as skipped with their reason, file and line, so no block goes untested silently.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
# `console` blocks are transcripts (commands with their output), not scripts: they are not test cases.
RUN_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<mode>run|claim|no-run)\b\s*(?P<reason>.*?)\s*-->\s*$")
ANY_MARKER = re.compile(r"^\s*<!--\s*docs-test")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int          # 1-based line of the opening fence
    lang: str
    code: str
    mode: str | None   # run / claim / no-run / None (unmarked)
    reason: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def _relative(page: Path) -> str:
    return str(page.relative_to(REPO))


def parse_blocks(page: Path) -> tuple[list[Block], list[str]]:
    """Every fenced block of the page, with the marker on the line before it; and the problems found
    (a marker that is not followed by a fenced block, a fence that is never closed)."""
    lines = page.read_text().split("\n")
    blocks, problems = [], []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if ANY_MARKER.search(lines[i]) and (not m or i + 1 >= len(lines) or not FENCE.match(lines[i + 1])):
            problems.append(f"{_relative(page)}:{i + 1}: a docs-test marker must be `<!-- docs-test: run|claim|"
                            f"no-run (why) -->` on the line right before a fenced block: {lines[i].strip()!r}")
        f = FENCE.match(lines[i])
        if not f:
            i += 1
            continue
        fence, indent = f["fence"], len(f["indent"])
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if i >= len(lines):
            problems.append(f"{_relative(page)}:{start + 1}: fenced block never closed")
            break
        marker = MARKER.match(lines[start - 1]) if start > 0 else None
        blocks.append(Block(page, start + 1, f["lang"].lower(), "\n".join(body) + "\n",
                            marker["mode"] if marker else None,
                            marker["reason"].strip("() ") if marker else ""))
        i += 1
    return blocks, problems


ALL = [(b, p) for page in PAGES for b, p in [parse_blocks(page)]]
BLOCKS = [b for blocks, _ in ALL for b in blocks]
CODE_BLOCKS = [b for b in BLOCKS if b.lang in RUN_LANGS]
# A block shown on two pages (the README's first claim is also the guide's) runs once, where it first appears.
FIRST_RUN: dict[tuple[str, str], Block] = {}
for _b in CODE_BLOCKS:
    if _b.mode in ("run", "claim"):
        FIRST_RUN.setdefault((_b.mode, _b.code), _b)


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET", "PYTEST_ADDOPTS")
           and not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["EMOCHECK_RESULTS_DIR"] = str(tmp_path / "results")
    env["OMP_NUM_THREADS"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def _show(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama saved as a local Hugging Face folder: `--emocheck-models PATH` loads it."""
    from emocheck.testing import tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    tiny = tiny_model("llama", n_layers=2)
    tiny.model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


def _run_block(block: Block, tmp_path: Path) -> None:
    env = _env(tmp_path)
    if RUN_LANGS[block.lang] == "python":
        script = tmp_path / "block.py"
        script.write_text(block.code)
        cmd, cwd = [sys.executable, str(script)], tmp_path
    else:
        # Shell blocks are written for the repository root (paths such as benchmarks/, hypotheses/).
        cmd, cwd = ["bash", "-euo", "pipefail", "-c", block.code], REPO
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"{block.id} ({block.lang}) failed:\n{block.code}\n{_show(done)}"


def _run_claim(block: Block, tmp_path: Path, model_dir: Path) -> None:
    assert RUN_LANGS.get(block.lang) == "python", f"{block.id}: a claim block must be python"
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "test_docs_claim.py").write_text(block.code)
    # The claims in hypotheses/ get their fixtures (model_name, representations, ...) from the root
    # conftest; a claim module elsewhere needs the same one beside it.
    shutil.copy(REPO / "conftest.py", claims / "conftest.py")
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "pytest", str(claims), "--rootdir", str(claims),
           "--emocheck-models", str(model_dir), "--emocheck-profile", "docs",
           "-o", "emocheck_profiles=docs: base=smoke prompts_per_emotion=24",
           "--emocheck-results", str(results), "-p", "no:cacheprovider", "-q", "-W", "ignore::DeprecationWarning"]
    done = subprocess.run(cmd, cwd=claims, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)
    # 0: every claim supported, 1: some not supported (a verdict); anything else is an error.
    assert done.returncode in (0, 1), f"{block.id}: the claim did not run:\n{_show(done)}"
    table = results / "docs" / "statistics" / "effect_sizes.csv"
    assert table.is_file(), f"{block.id}: no effect_sizes.csv was written:\n{_show(done)}"
    effects = pd.read_csv(table)
    assert len(effects) > 0, f"{block.id}: no claim was judged:\n{_show(done)}"
    bad = effects[effects["status"] != "ok"]
    assert bad.empty, f"{block.id}: claims without a verdict:\n{bad[['claim_id', 'status', 'error']]}\n{_show(done)}"
    assert effects["verdict"].isin(["supported", "refuted", "inconclusive"]).all(), effects[["claim_id", "verdict"]]


@pytest.mark.parametrize("block", CODE_BLOCKS, ids=[b.id for b in CODE_BLOCKS])
def test_code_block(block: Block, tmp_path, request):
    if block.mode is None:
        pytest.skip(f"{block.id}: unmarked {block.lang} block (mark it <!-- docs-test: run --> or "
                    "<!-- docs-test: no-run (why) -->)")
    if block.mode == "no-run":
        pytest.skip(f"{block.id}: no-run: {block.reason or 'no reason given'}")
    first = FIRST_RUN[(block.mode, block.code)]
    if first is not block:
        pytest.skip(f"{block.id}: the same {block.mode} block as {first.id}, which runs it")
    if block.mode == "claim":
        _run_claim(block, tmp_path, request.getfixturevalue("tiny_model_dir"))
    else:
        _run_block(block, tmp_path)


def test_markers_are_well_formed_and_the_readme_runs_code():
    problems = [p for _, page_problems in ALL for p in page_problems]
    problems += [f"{b.id}: a no-run block needs a reason: <!-- docs-test: no-run (why) -->"
                 for b in BLOCKS if b.mode == "no-run" and not b.reason]
    problems += [f"{b.id}: `{b.mode}` marks a {b.lang or 'plain'} block; only python and bash blocks run"
                 for b in BLOCKS if b.mode in ("run", "claim") and b.lang not in RUN_LANGS]
    assert not problems, "\n".join(problems)
    readme = {b.mode for b in BLOCKS if b.page.name == "README.md" and b.page.parent == REPO}
    assert {"run", "claim"} <= readme, f"the README's first claim and notebook example must run; marks: {readme}"


# ----------------------------------------------------------------------------------------------
# Links
# ----------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str, code_spans: bool = False) -> str:
    """The page without its fenced blocks (and without inline code unless `code_spans`): where a link
    is not a link and a heading is not a heading."""
    out, fence = [], None
    for line in text.split("\n"):
        f = FENCE.match(line)
        if fence is None and f:
            fence = f["fence"]
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        out.append(line if code_spans else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs gives a page (Python-Markdown's toc slugify), plus explicit `{#id}`s."""
    from markdown.extensions.toc import slugify

    ids = set()
    for line in _prose(page.read_text(), code_spans=True).split("\n"):
        h = HEADING.match(line)
        if h:
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h[2])
            explicit = re.search(r"\{#([\w-]+)\}", title)
            ids.add(explicit[1] if explicit else slugify(re.sub(r"[*`]", "", title), "-"))
    return ids


def relative_links(page: Path) -> list[tuple[int, str]]:
    found = []
    for n, line in enumerate(_prose(page.read_text()).split("\n"), start=1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                continue   # http(s), mailto: not checked offline
            found.append((n, target))
    return found


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for line, target in relative_links(page):
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            where = f"{_relative(page)}:{line}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest})")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where} (no heading with id #{anchor} in {_relative(dest)})")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_the_link_checker_sees_links_and_ignores_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title here\n\nSee [a](other.md#x) and ![img](pic.png) and [web](https://e.org).\n"
                    "`[not](a-link.md)`\n\n```\n[also not](b.md)\n# not a heading\n```\n## Sub *title* with `code`\n")
    assert relative_links(page) == [(3, "other.md#x"), (3, "pic.png")]
    assert _anchors(page) == {"title-here", "sub-title-with-code"}


# ----------------------------------------------------------------------------------------------
# The CI workflow and the site
# ----------------------------------------------------------------------------------------------

def test_claims_workflow_runs_smoke_and_publishes_the_report():
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "claims.yml").read_text())
    job = workflow["jobs"]["smoke"]
    assert job["env"]["PROFILE"] == "smoke"
    steps = job["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make install" in runs and "make claims PROFILE=${{ env.PROFILE }}" in runs, runs
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and upload[0].get("if") == "always()", upload
    assert upload[0]["with"]["path"] == "results/${{ env.PROFILE }}/statistics/report.html"
    # The step summary is the plugin's: it appends report.md when $GITHUB_STEP_SUMMARY is set.
    from emocheck.plugin import controller

    assert "GITHUB_STEP_SUMMARY" in Path(controller.__file__).read_text()


def test_docs_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the nav or a nav entry
    without its page, or an API reference that no longer resolves fails the build."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is not installed: pip install -e '.[docs]' (make install does)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, _show(done)
    reference = (site / "reference" / "stats" / "index.html").read_text()
    # mkdocstrings rendered the docstrings, not an empty page
    assert 'id="emocheck.stats.compare"' in reference and "Cohen" in reference
    assert ":func:" not in reference   # the Sphinx roles of the docstrings are dropped (mkdocs_hooks.py)
    assert "upload-artifact" in (site / "ci" / "index.html").read_text()   # the workflow is included
