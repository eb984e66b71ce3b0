"""Rule audio_localised: re-explain the refined excerpts of audio_refine that still flip, count recovered segments."""
from advxai import runtime
from advxai.stages.audio import localised
from advxai.stages.settings import AudioExplainSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    localised(snakemake.input.detector, snakemake.input.evaluation, snakemake.input.excerpts, snakemake.input.refined,
              snakemake.output[0], explain=AudioExplainSettings.from_params(snakemake.params.explain), ks=snakemake.params.ks,
              device=runtime.use_device(snakemake.params.device))
