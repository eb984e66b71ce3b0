"""Rule audio_labelflip: label flips of the top-k segments of every ranking, k = 1..20."""
from advxai import runtime
from advxai.stages.audio import labelflip

with runtime.job(snakemake.log[0], snakemake.threads):
    labelflip(snakemake.input.detector, snakemake.input.evaluation, snakemake.input.excerpts, snakemake.input.explanations,
              snakemake.output[0], ks=snakemake.params.ks, device=runtime.use_device(snakemake.params.device))
