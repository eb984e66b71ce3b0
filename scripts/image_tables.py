"""Rule image_tables: Tables 1, 2, 3, 6, 7, 8 as CSV and Markdown from the per-shard files."""
from advxai import runtime
from advxai.stages.report import ImageReportInputs, write_image_tables

with runtime.job(snakemake.log[0], snakemake.threads):
    inputs = ImageReportInputs.from_lists(dict(snakemake.input.items()), models=snakemake.params.models,
                                          pairs=snakemake.params.pairs, slic_models=snakemake.params.slic_models)
    write_image_tables(inputs, dict(snakemake.output.items()), k=snakemake.params.k)
