"""The README (a tour) and the reference pages in docs/ (a MkDocs site): the site builds strictly,
every page is in its nav, every Python block a user would copy runs as written (shortened where
its marker says) or says why not, docstring examples run as doctests, no notebook leftovers."""

from __future__ import annotations

import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, subprocess_env

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- (test: run(?: in (?P<elsewhere>tests/\S+\.py))?.*?|not run: (?P<why>.+?)) -->\n$")
SWAP = re.compile(r'"([^"]+)" -> "([^"]*)"')


def _blocks() -> list[tuple[str, int, str, str]]:
    """(page, block number, marker, code) of every Python block in the README and docs/."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for n, m in enumerate(FENCE.finditer(text)):
            before = text[:m.start()].splitlines(keepends=True)
            found.append((str(page.relative_to(REPO)), n, before[-1] if before else "",
                          m.group(1)))
    return found


BLOCKS = _blocks()
RUN = [pytest.param(marker, code, id=f"{page}-{n}") for page, n, marker, code in BLOCKS
       if (m := MARKER.match(marker)) and m.group(0).startswith("<!-- test: run")
       and not m.group("elsewhere")]


def test_the_readme_is_a_short_tour_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", readme)
    assert links and all((REPO / link).exists() for link in links), links


def test_the_docs_build_strictly_with_every_page_in_the_nav(tmp_path):
    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from (pages(value) if isinstance(value, list) else [value])

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert sorted(pages(config["nav"])) == sorted(p.name for p in (REPO / "docs").glob("*.md"))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                           str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "claims" / "index.html").exists()


def test_every_python_block_runs_or_says_why_not():
    assert len(BLOCKS) >= 10
    for page, n, marker, _code in BLOCKS:
        m = MARKER.match(marker)
        assert m, f"{page}, Python block {n}: no '<!-- test: run ... -->' / '<!-- not run: why -->'"
        if m.group("elsewhere"):          # run by another test, which reads it from this page
            assert Path(page).name in (REPO / m.group("elsewhere")).read_text(), (page, n)
        if m.group("why"):
            assert len(m.group("why")) >= 20, (page, n)
    for page in PAGES:                     # a marker always sits right above its block
        for m in re.finditer(r"<!-- (test: run|not run)", page.read_text()):
            assert page.read_text()[m.start():].split("\n", 2)[1] == "```python", page


@pytest.mark.parametrize("marker, code", RUN)
def test_a_docs_python_block_runs_as_written(marker, code, tmp_path):
    for old, new in SWAP.findall(marker):
        assert old in code, f"the marker's {old!r} is not in the block"
        code = code.replace(old, new)
    (tmp_path / "block.py").write_text(code)
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                         PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                         RAY_AUTH_MODE="disabled")
    done = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_no_notebook_leftovers_in_the_text():
    leftovers = re.compile(r"issue ?#?\d+|#\d{2}\b|a session earlier|this session", re.I)
    found = [f"{p.name}: {m.group(0)}" for p in PAGES for m in leftovers.finditer(p.read_text())]
    assert found == []


def test_every_docstring_example_runs_as_a_doctest(tmp_path, monkeypatch):
    """Examples written with ``>>>`` run (the rest are plain examples, no prompts)."""
    monkeypatch.chdir(tmp_path)
    package = REPO / "grok_mlflow"
    tested = 0
    for path in sorted(package.rglob("*.py")):
        if ">>>" not in path.read_text():
            continue
        module = importlib.import_module(
            "grok_mlflow." + ".".join(path.relative_to(package).with_suffix("").parts))
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS
                                 | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, path
        tested += result.attempted
    assert tested >= 20
