"""Rule audio_figures: Figs 2 and 3 from the audio tables, and an adversarial excerpt with its LIME weights."""
from advxai import runtime
from advxai.stages.report import write_audio_figures

with runtime.job(snakemake.log[0], snakemake.threads):
    write_audio_figures(dict(snakemake.input.items()), dict(snakemake.output.items()))
