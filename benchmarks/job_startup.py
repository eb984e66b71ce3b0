"""Benchmark: how long each workflow job takes to start, before it does any work.

A job's start-up is the import of what its script in ``scripts/`` imports (torch, torchvision,
captum, ... through the library). For every script this runs the script's own import lines in a
fresh interpreter, ``--repeats`` times, and prints the fastest CPU time (user + system; on a busy
machine it is far steadier than wall time), the fastest wall time, the number of modules loaded
and which heavy packages the imports pulled in. Snakemake's own per-job overhead and
CUDA initialisation come on top; they do not depend on the library.

Run: ``PYTHONPATH=src python benchmarks/job_startup.py`` (``--json FILE`` also writes the numbers).
"""

from __future__ import annotations

import argparse
import ast
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "torchvision", "captum", "sklearn", "skimage", "librosa", "matplotlib", "pandas", "scipy", "h5py")
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

_PROBE = """
import sys, time
start = time.perf_counter()
{imports}
elapsed = time.perf_counter() - start
loaded = [name for name in {heavy!r} if name in sys.modules]
print(elapsed, len(sys.modules), ",".join(loaded))
"""


def script_imports(path: Path) -> str:
    """The top-level import statements of a workflow script, as source."""
    source = path.read_text()
    tree = ast.parse(source)
    return "\n".join(ast.get_source_segment(source, node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(imports: str, repeats: int) -> dict:
    """Fastest process CPU and wall time, module count and heavy packages of a process running ``imports``."""
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(repeats):
        cpu, start = _children_cpu(), time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _PROBE.format(imports=imports, heavy=HEAVY)], capture_output=True, text=True,
                              check=True)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, _children_cpu() - cpu)
        _, modules, loaded = (done.stdout.strip().rpartition("\n")[-1].split(" ") + [""])[:3]
    return {"cpu_s": round(best_cpu, 2), "wall_s": round(best_wall, 2), "modules": int(modules),
            "loaded": loaded.split(",") if loaded else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per script (the fastest is reported)")
    parser.add_argument("--json", help="also write {script: {cpu_s, wall_s, modules, loaded}} here")
    parser.add_argument("scripts", nargs="*", help="script names (default: every script in scripts/)")
    args = parser.parse_args()
    names = args.scripts or sorted(p.stem for p in SCRIPTS.glob("*.py"))
    results = {}
    print(f"{'script':<20s} {'CPU':>7s} {'wall':>7s} {'modules':>7s}  heavy packages loaded")
    for name in names:
        result = results[name] = measure(script_imports(SCRIPTS / f"{name}.py"), args.repeats)
        print(f"{name:<20s} {result['cpu_s']:6.2f}s {result['wall_s']:6.2f}s {result['modules']:7d}  {','.join(result['loaded'])}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
