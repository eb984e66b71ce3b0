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
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [install, test]


def readme_snippet(heading: str, readme: Path = ROOT / "README.md") -> str:
    """The first ```python block after the line `heading` of the README."""
    section = readme.read_text().split(f"\n{heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def printed_values(code: str, folder: Path, lines: int) -> list:
    """Run `code` as a script in `folder`; its last `lines` printed lines, read as Python literals
    (NumPy reprs reduced to plain numbers and lists)."""
    script = folder / "example.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.strip().splitlines()[-lines:]
    return [ast.literal_eval(line.replace("np.float64", "").replace("array", "")) for line in printed]


# The README's Python example and what it prints, pinned: the example is deterministic on the
# CPU (seeded targets, LIME samples and noise; bundled weights and photos). Where the README's
# example changes, point README_EXAMPLE at its heading and pin its new output here.
README_EXAMPLE = "## Use it from Python"
README_EXAMPLE_OUTPUT = [
    {"lime": 0.0, "sal": 0.5, "sal-sg": 0.5, "sal-sg2": 0.5, "sal-vg": 0.5, "ig": 0.5, "ig-sg": 0.0, "ig-sg2": 0.0, "ig-vg": 0.0,
     "gbp": 0.5, "gbp-sg": 0.5, "gbp-sg2": 0.5, "gbp-vg": 0.5},  # label-flip rate at k = 3 over the two photos
    {1: [0, -1], 3: [0, -1]},  # LIME's recovered segments per photo: the coffee's refined adversaries do not flip
]


@pytest.mark.slow
def test_readme_python_example_prints_its_pinned_output(tmp_path):
    """The README's Python block runs as printed and prints the pinned label-flip rates per
    explainer and recovered counts per k (not only keys and 0-1 bounds)."""
    rates, recovered = printed_values(readme_snippet(README_EXAMPLE), tmp_path, lines=2)
    assert sorted(rates) == sorted(BUILTIN_EXPLAINERS)
    assert [rates, {k: list(counts) for k, counts in recovered.items()}] == README_EXAMPLE_OUTPUT
