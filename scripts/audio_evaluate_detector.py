"""Rule audio_evaluate_detector: tune the threshold on validation, score the test songs."""
from advxai import runtime
from advxai.stages.audio import evaluate

with runtime.job(snakemake.log[0], snakemake.threads):
    evaluate(snakemake.input.detector, snakemake.input.valid, snakemake.input.test, snakemake.output[0],
             median_filter=snakemake.params.median_filter, seed=int(snakemake.wildcards.seed),
             device=runtime.use_device(snakemake.params.device))
