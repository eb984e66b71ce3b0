"""The documentation ships with the repository: every section that code, config and README cite
exists, and nothing cites a document outside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from advxai.names import BUILTIN_EXPLAINERS

ROOT = Path(__file__).resolve().parents[1]
CITING = ["src", "workflow", "scripts", "benchmarks", "profiles", "envs", "presets", "config.yaml", "README.md"]


def tracked_text() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", *CITING], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {name: (ROOT / name).read_text(errors="replace") for name in names if (ROOT / name).is_file()}


def section_numbers(doc: str) -> set[str]:
    """Numbers of the `## N` / `### N.M` headings of a docs page."""
    return set(re.findall(r"^#{1,4} §?(\d+(?:\.\d+)*)\b", (ROOT / "docs" / doc).read_text(), flags=re.M))


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return tracked_text()


def test_nothing_cites_documents_outside_the_repository(sources):
    outside = re.compile(r"(REFERENCE|DESIGN)(\.md)? ?§|shared/spec|\.\./shared")
    offenders = [f"{name}:{number}" for name, text in sources.items()
                 for number, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert offenders == []


@pytest.mark.parametrize("doc", ["method.md", "decisions.md"])
def test_every_cited_section_exists(sources, doc):
    if doc == "decisions.md":  # its entries are cited as "decision N" (config.yaml's header names the file)
        cited = {number for text in sources.values() for number in re.findall(r"\b[Dd]ecision (\d+)\b", text)}
    else:
        cited = {number for text in sources.values() for number in re.findall(rf"docs/{re.escape(doc)} §(\d+(?:\.\d+)*)", text)}
    assert cited, f"nothing cites docs/{doc}"
    assert cited <= section_numbers(doc), sorted(cited - section_numbers(doc))


def test_decisions_are_numbered_on_their_own(sources):
    """docs/decisions.md numbers its entries 1, 2, 3, … in order; nothing cites the old "§10.N"."""
    numbers = [int(n) for n in re.findall(r"^#{2,3} (\d+) ", (ROOT / "docs" / "decisions.md").read_text(), flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert [name for name, text in sources.items() if "§10." in text] == []


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    install = blocks[0].split("&&")[0].strip()  # the quick start: install, then run
    test = blocks[1].strip()
    assert install.startswith("pip install") and test == "pytest"
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [install, test]


API_DOCS = ROOT / "docs" / "api.md"

QUICK_START_OUTPUT = """\
     explainer segmentation aggregation  k  n  flips  rate  ci_low  ci_high
          lime         rect        mean  1  3      2  0.67    0.21     0.94
          lime         rect        mean  3  3      2  0.67    0.21     0.94
           sal         rect    mean_abs  1  3      2  0.67    0.21     0.94
           sal         rect    mean_abs  3  3      1  0.33    0.06     0.79
         ig-sg         rect    mean_abs  1  3      1  0.33    0.06     0.79
         ig-sg         rect    mean_abs  3  3      2  0.67    0.21     0.94
     magnitude         rect           -  1  3      2  0.67    0.21     0.94
     magnitude         rect           -  3  3      2  0.67    0.21     0.94
magnitude-mean         rect           -  1  3      2  0.67    0.21     0.94
magnitude-mean         rect           -  3  3      2  0.67    0.21     0.94
experiment segmentation  k  n    a    b  difference  p_value          test  significant
label_flip         rect  1  3 0.67 0.67         0.0      1.0 exact McNemar        False
label_flip         rect  3  3 0.67 0.67         0.0      1.0 exact McNemar        False
"""
"""The quick start's printed tables (a CPU run; the rates are rounded to two digits)."""


def python_block(text: str, after: str) -> str:
    """The first ```python block after the line ``after``."""
    return text.split(after, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def run_example(code: str, tmp_path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_api_quick_start_prints_its_pinned_tables(tmp_path):
    """docs/api.md's quick start (the README's "Use it from Python"), at most 12 lines, runs and prints the pinned tables."""
    code = python_block(API_DOCS.read_text(), "## Quick start")
    assert len(code.strip().splitlines()) <= 12
    assert run_example(code, tmp_path) == QUICK_START_OUTPUT


def test_the_readme_shows_the_api_quick_start():
    readme = (ROOT / "README.md").read_text()
    assert python_block(readme, "## Use it from Python") == python_block(API_DOCS.read_text(), "## Quick start")


# docs/api.md's low-level example and what it prints, pinned: the example is deterministic on the
# CPU (seeded targets, LIME samples and noise; bundled weights and photos).
LOW_LEVEL_OUTPUT = [
    {"lime": 0.0, "sal": 0.5, "sal-sg": 0.5, "sal-sg2": 0.5, "sal-vg": 0.5, "ig": 0.5, "ig-sg": 0.0, "ig-sg2": 0.0, "ig-vg": 0.0,
     "gbp": 0.5, "gbp-sg": 0.5, "gbp-sg2": 0.5, "gbp-vg": 0.5},  # label-flip rate at k = 3 over the two photos
    {1: [0, -1], 3: [0, -1]},  # LIME's recovered segments per photo: the coffee's refined adversaries do not flip
]


@pytest.mark.slow
def test_the_low_level_example_prints_its_pinned_output(tmp_path):
    """docs/api.md's engine-and-evaluation example runs as printed and prints the pinned label-flip
    rates per explainer and recovered counts per k (not only keys and 0-1 bounds)."""
    stdout = run_example(python_block(API_DOCS.read_text(), "## The low-level library"), tmp_path)
    rates, recovered = (ast.literal_eval(line.replace("np.float64", "").replace("array", "")) for line in stdout.strip().splitlines()[-2:])
    assert sorted(rates) == sorted(BUILTIN_EXPLAINERS)
    assert [rates, {k: list(counts) for k, counts in recovered.items()}] == LOW_LEVEL_OUTPUT
