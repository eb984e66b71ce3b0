"""Rule audio_features: linear-magnitude STFT frames and frame labels of one split."""
from advxai import runtime
from advxai.stages.audio import write_features

with runtime.job(snakemake.log[0], snakemake.threads):
    write_features(snakemake.input.manifest, snakemake.input.corpus, snakemake.params.split, snakemake.output[0])
