#!/usr/bin/env bash
# Snakemake runs this once inside the environment it has just created from advxai.yaml: it
# installs advxai itself, editable, from the repository whose workflow created the environment.
# ADVXAI_SOURCE is that repository's root; workflow/rules/common.smk sets it while parsing.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation --editable "${ADVXAI_SOURCE:?is set by workflow/rules/common.smk while Snakemake parses the workflow}"
