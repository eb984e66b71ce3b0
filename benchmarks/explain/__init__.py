"""Benchmark: advxai's explanation stage, PGD and label-flip stage against the authors' call pattern.

Run it as ``python benchmarks/explain_bench.py`` (benchmarks/README.md). The parts:

- ``settings``: the paper's and the run settings, what each side computes at them (captum's passes,
  the engine's row streams, the jobs' batch sizes) and the two-point extrapolation to the paper's;
- ``timing``: synchronised timing, rounds that alternate the compared sides (best of each kept),
  the model's own passes;
- ``inputs``: the model, the bundled photos, attack targets, segmentations;
- ``reference``: the authors' captum pattern on the engine's random draws, at the authors' batch;
- ``engine``: advxai's engine per family, its own work, the model-pass baseline and pass efficiency;
- ``stages``: PGD, the label-flip stage, LIME at captum's pass shape;
- ``agreement``: how far the two sides' segment scores are, and whether their top-k segments agree;
- ``report``: what is printed, and the SUMMARY, FAST and SWEEP lines;
- ``run``: one model's benchmark; ``cli``: the options and the entry point.
"""
