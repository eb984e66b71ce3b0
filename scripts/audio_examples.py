"""Rule audio_examples: one seeded adversarial excerpt, its refinements and their explanations."""

from advxai import runtime
from advxai.stages.examples import audio_example
from advxai.stages.settings import AudioExplainSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    audio_example(
        snakemake.input.detector,
        snakemake.input.evaluation,
        snakemake.input.excerpts,
        snakemake.input.refined,
        snakemake.output[0],
        explain=AudioExplainSettings.from_params(snakemake.params.explain),
        ks=snakemake.params.ks,
        seed=snakemake.params.seed,
        device=runtime.use_device(snakemake.params.device),
    )
