"""Rule audio_synthetic_corpus: generate the synthetic corpus in Jamendo's layout."""
from advxai import runtime
from advxai.stages.audio_data import write_corpus
from advxai.stages.settings import CorpusSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    write_corpus(snakemake.output[0], corpus=CorpusSettings.from_params(snakemake.params.corpus))
