"""Benchmark: advxai's explanation stage, PGD and label-flip stage against the authors' captum call pattern.

``PYTHONPATH=src python benchmarks/explain_bench.py [--device cuda] [--models resnet50] [--arithmetic tf32,bf16]``;
what it measures and how: the package ``benchmarks/explain`` and benchmarks/README.md.
"""

from explain.cli import main

if __name__ == "__main__":
    main()
