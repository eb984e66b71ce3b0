"""Rules image_explanation_figures, image_example_figures and image_refined_figure: see advxai.report.method_figures."""

from advxai import runtime
from advxai.report import method_figures

with runtime.job(snakemake.log[0], snakemake.threads):
    figure, params = snakemake.params.figure, snakemake.params
    if figure == "explanations":
        method_figures.write_explanation_figures(
            snakemake.input.examples, params.model, params.segmentation, dict(snakemake.output.items())
        )
    elif figure == "examples":
        method_figures.write_example_figures(
            snakemake.input.examples, params.model, params.segmentations, dict(snakemake.output.items())
        )
    else:
        method_figures.write_refined_image_figure(
            snakemake.input.examples,
            params.model,
            params.segmentation,
            params.ks,
            params.explainers,
            snakemake.output[0],
        )
