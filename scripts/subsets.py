"""Rule subsets: the seeded label-flip and localised subsets of one model."""
from advxai import runtime
from advxai.stages.image import draw_subsets

with runtime.job(snakemake.log[0], snakemake.threads):
    draw_subsets(list(snakemake.input.adversaries), snakemake.output[0], subset=snakemake.params.subset)
