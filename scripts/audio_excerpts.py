"""Rule audio_excerpts: clean/adversarial excerpt pairs per direction."""
from advxai import runtime
from advxai.stages.audio import select
from advxai.stages.settings import ExcerptSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    select(snakemake.input.detector, snakemake.input.evaluation, snakemake.input.test, snakemake.input.adversaries, snakemake.output[0],
           excerpts=ExcerptSettings.from_params(snakemake.params.excerpts), device=runtime.use_device(snakemake.params.device))
