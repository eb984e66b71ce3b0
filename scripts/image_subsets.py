"""Rule image_subsets: the seeded label-flip and localised subsets of one model."""
from advxai import runtime
from advxai.stages.image_subsets import draw_subsets
from advxai.stages.settings import SubsetSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    draw_subsets(list(snakemake.input.adversaries), snakemake.output[0], subset=SubsetSettings.from_params(snakemake.params.subset))
