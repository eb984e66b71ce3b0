"""Rule train_detector: train one singing-voice detector (resumes from finished epochs)."""
from advxai import runtime
from advxai.stages.audio import train

with runtime.job(snakemake.log[0], snakemake.threads):
    train(snakemake.input.train, snakemake.output[0], train=snakemake.params.train, seed=int(snakemake.wildcards.seed), device=runtime.resolve_device(snakemake.params.device))
