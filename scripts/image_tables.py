"""Rule image_tables: Tables 1, 2, 3, 6, 7, 8 as CSV and Markdown from the per-shard files."""
from advxai import runtime
from advxai.report.stages import write_image_tables

with runtime.job(snakemake.log[0], snakemake.threads):
    write_image_tables(dict(snakemake.input.items()), dict(snakemake.output.items()), k=snakemake.params.k)
