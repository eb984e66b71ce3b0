"""The public call and what goes with it (docs/api.md): :mod:`.evaluate` the call, :mod:`.inputs`
models and images, :mod:`.explainers` the explainers a caller names, :mod:`.result` the tables and
paired tests, :mod:`.audio` the detector's excerpts, :mod:`.quantus_metrics` Quantus metrics.
The package's names are exported lazily by :mod:`advxai`."""
