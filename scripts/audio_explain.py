"""Rule audio_explain: every explainer on every adversarial excerpt."""
from advxai import runtime
from advxai.stages.audio import explain
from advxai.stages.settings import AudioExplainSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    explain(snakemake.input.detector, snakemake.input.excerpts, snakemake.output[0],
            settings=AudioExplainSettings.from_params(snakemake.params.explain), device=runtime.use_device(snakemake.params.device))
