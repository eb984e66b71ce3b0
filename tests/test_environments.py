"""The conda environment of the rules (envs/advxai.yaml) agrees with pyproject.toml, the library
imports without Snakemake, and `snakemake --lint` finds nothing. Needs no conda: the files are
read, not deployed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs" / "advxai.yaml"

# conda-forge names of packages whose PyPI name differs.
PYPI_NAME = {"pytorch": "torch", "pysoundfile": "soundfile", "matplotlib-base": "matplotlib"}
# They run the workflow from the submitting environment; jobs never import them (pyproject's `workflow` extra).
WORKFLOW_RUNNERS = {"snakemake", "snakemake-executor-plugin-slurm"}
# What the environment needs to install advxai itself (advxai.post-deploy.sh), not advxai's dependencies.
INSTALL_TOOLS = {"python", "pip", "setuptools"}


def conda_requirement(spec: str) -> tuple[str, SpecifierSet]:
    """``"pytorch >=2.1,<=2.14.1"`` → ``("pytorch", SpecifierSet(">=2.1,<=2.14.1"))``."""
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", spec.strip())
    assert match, f"unreadable conda spec {spec!r}"
    return match[1].lower(), SpecifierSet(match[2].replace(" ", ""))


def environment() -> dict[str, SpecifierSet]:
    """Package → version range of envs/advxai.yaml, conda and pip entries, in PyPI names."""
    packages = {}
    for entry in yaml.safe_load(ENV_FILE.read_text())["dependencies"]:
        if isinstance(entry, dict):
            for pip_spec in entry["pip"]:
                requirement = Requirement(pip_spec)
                packages[requirement.name.lower()] = requirement.specifier
        else:
            name, specifier = conda_requirement(entry)
            packages[PYPI_NAME.get(name, name)] = specifier
    return packages


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_uses_conda_forge_only():
    assert yaml.safe_load(ENV_FILE.read_text())["channels"] == ["conda-forge", "nodefaults"]


def test_environment_and_pyproject_name_the_same_dependencies_with_the_same_ranges():
    runtime = {Requirement(spec).name.lower(): Requirement(spec).specifier for spec in project()["dependencies"]}
    env = {name: specifier for name, specifier in environment().items() if name not in INSTALL_TOOLS}
    assert env.keys() == runtime.keys()
    for name, specifier in runtime.items():
        assert env[name] == specifier, f"{name}: pyproject.toml says {specifier}, {ENV_FILE.name} says {env[name]}"


def test_snakemake_and_its_slurm_plugin_are_the_workflow_extra_not_library_dependencies():
    extras = project()["optional-dependencies"]
    assert {Requirement(spec).name.lower() for spec in extras["workflow"]} == WORKFLOW_RUNNERS
    assert not WORKFLOW_RUNNERS & {Requirement(spec).name.lower() for spec in project()["dependencies"]}


# Importing snakemake (or anything below it) raises ImportError, as where it is not installed.
BLOCK_SNAKEMAKE = """
import importlib.abc, sys
class BlockSnakemake(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "snakemake":
            raise ImportError(f"{name} is blocked: the library must import without snakemake")
        return None
sys.meta_path.insert(0, BlockSnakemake())
"""


def test_every_library_module_imports_without_snakemake():
    modules = sorted(".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
                     for path in (ROOT / "src" / "advxai").rglob("*.py"))
    assert {"advxai", "advxai.explainers.engine", "advxai.stages.image", "advxai.stages.audio"} <= set(modules)
    check = BLOCK_SNAKEMAKE + f"""
import importlib
for module in {modules!r}:
    importlib.import_module(module)
try:
    import snakemake
except ImportError:
    print("snakemake blocked; imported", len({modules!r}), "modules")
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"snakemake blocked; imported {len(modules)} modules" in result.stdout


# Jobs that run no model: the most numerous of a run. Each would pay seconds of CPU to import torch.
MODEL_FREE_SCRIPTS = ["image_manifest", "image_shard", "image_subsets", "image_segments", "audio_synthetic_corpus", "audio_manifest",
                      "image_tables", "image_figures", "audio_tables", "audio_figures", "findings"]


def test_jobs_that_run_no_model_import_no_torch():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from job_startup import script_imports

    check = "import sys\n" + "".join(
        f"{script_imports(ROOT / 'scripts' / f'{name}.py')}\nif 'torch' in sys.modules: sys.exit('{name} imports torch')\n"
        for name in MODEL_FREE_SCRIPTS)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


# Library modules that model-free jobs import, down to the file readers the report reads excerpts with.
TORCH_FREE_MODULES = ["advxai.stages.audio_files", "advxai.stages.report", "advxai.stages.image_shards",
                      "advxai.stages.image_subsets", "advxai.stages.image_segments", "advxai.stages.audio_data"]


def test_file_readers_and_model_free_stages_import_no_torch():
    check = "import importlib, sys\n" + "".join(
        f"importlib.import_module({name!r})\nif 'torch' in sys.modules: sys.exit({name!r} + ' imports torch')\n"
        for name in TORCH_FREE_MODULES)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_pinned_torch_release_satisfies_both():
    env = environment()
    assert "2.14.1" in env["torch"] and "0.29.1" in env["torchvision"]
    assert version("torch").split("+")[0] in env["torch"] and version("torchvision").split("+")[0] in env["torchvision"]


def test_environment_python_lies_within_requires_python():
    python = environment()["python"]
    requires = SpecifierSet(project()["requires-python"])
    minors = [f"3.{minor}" for minor in range(6, 16)]
    assert any(v in python for v in minors)
    assert all(v in requires for v in minors if v in python)


def test_post_deploy_script_installs_advxai_from_the_repository():
    script = (ENV_FILE.parent / "advxai.post-deploy.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ENV_FILE.parent / "advxai.post-deploy.sh")]).returncode == 0
    assert re.search(r"pip install .*--editable \"\$\{ADVXAI_SOURCE", script)
    assert 'os.environ.setdefault("ADVXAI_SOURCE", workflow.basedir)' in (ROOT / "workflow" / "rules" / "common.smk").read_text()


@pytest.mark.parametrize("configs", [[], ["config.yaml", "presets/test.yaml"]], ids=["default", "test-preset"])
def test_snakemake_lint_finds_nothing(configs):
    command = [sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"), "-d", str(ROOT)]
    if configs:
        command += ["--configfile", *(str(ROOT / c) for c in configs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Lints for" not in output and "good condition" in output


def test_job_threads_hold_whether_torch_loads_before_or_after():
    """runtime.set_threads limits torch to one thread when torch is already loaded and when it loads later (report jobs never load it)."""
    import subprocess
    import sys

    later = ("import sys, advxai.runtime as r; r.set_threads(1); assert 'torch' not in sys.modules; "
             "import torch; print(torch.get_num_threads())")
    before = "import torch, advxai.runtime as r; r.set_threads(1); print(torch.get_num_threads())"
    for code in (later, before):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "1"
