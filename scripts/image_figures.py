"""Rule image_figures: Figs 5-8 from the label-flip and localised tables, one per figure record."""
from advxai import runtime
from advxai.stages.report import ImageFigure, write_image_figures

with runtime.job(snakemake.log[0], snakemake.threads):
    figures = [ImageFigure(**record) for record in snakemake.params.figures]
    write_image_figures(snakemake.input.labelflip, snakemake.input.localised, figures, list(snakemake.output))
