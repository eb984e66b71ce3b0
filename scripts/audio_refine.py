"""Rule audio_refine: the top-k norm tiles of every adversarial excerpt, and whether the refined excerpt still flips."""

from advxai import runtime
from advxai.stages.refine import refine_excerpts

with runtime.job(snakemake.log[0], snakemake.threads):
    refine_excerpts(
        snakemake.input.detector,
        snakemake.input.evaluation,
        snakemake.input.excerpts,
        snakemake.output[0],
        ks=snakemake.params.ks,
        device=runtime.use_device(snakemake.params.device),
    )
