"""Rule image_weights: one model weights file, fetched once on the submitting host and verified."""
from advxai import runtime
from advxai.weights import fetch_weights

with runtime.job(snakemake.log[0]) as log:
    fetch_weights(snakemake.params.url, snakemake.output[0], log)
