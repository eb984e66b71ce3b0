"""Rule audio_tables: audio tables as CSV and Markdown."""
from advxai import runtime
from advxai.stages.report import write_audio_tables

with runtime.job(snakemake.log[0], snakemake.threads):
    write_audio_tables(dict(snakemake.input.items()), dict(snakemake.output.items()), experiment_seeds=snakemake.params.experiment_seeds)
