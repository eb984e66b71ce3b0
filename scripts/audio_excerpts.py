"""Rule audio_excerpts: clean/adversarial excerpt pairs per direction."""
from advxai import runtime
from advxai.stages.audio import select

with runtime.job(snakemake.log[0], snakemake.threads):
    select(dict(snakemake.input.items()), snakemake.output[0], excerpts=snakemake.params.excerpts)
