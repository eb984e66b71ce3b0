"""Rule synthetic_corpus: generate the synthetic corpus in Jamendo's layout."""
from advxai import runtime
from advxai.stages.audio import write_corpus

with runtime.job(snakemake.log[0], snakemake.threads):
    write_corpus(snakemake.output[0], corpus=snakemake.params.corpus)
