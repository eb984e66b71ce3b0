"""Rule audio_refined_figure: one excerpt's refined perturbations and each explainer's top-k tiles."""

from advxai import runtime
from advxai.report.method_figures import write_refined_audio_figure

with runtime.job(snakemake.log[0], snakemake.threads):
    write_refined_audio_figure(
        snakemake.input.example, snakemake.params.explainers, snakemake.params.seed, snakemake.output[0]
    )
