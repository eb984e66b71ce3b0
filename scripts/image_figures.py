"""Rule image_figures: Figs 5-8 from the label-flip and localised tables."""
from advxai import runtime
from advxai.report.stages import write_image_figures

with runtime.job(snakemake.log[0], snakemake.threads):
    write_image_figures(snakemake.input.labelflip, snakemake.input.localised, list(snakemake.output))
