"""Rule audio_manifest: validate the corpus (files, decoding, .lab lines) and list its songs per split."""
from advxai import runtime
from advxai.stages.audio_data import write_manifest

with runtime.job(snakemake.log[0], snakemake.threads):
    write_manifest(snakemake.input.corpus, snakemake.output[0])
