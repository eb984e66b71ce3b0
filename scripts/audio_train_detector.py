"""Rule audio_train_detector: train one singing-voice detector (resumes from finished epochs)."""
from advxai import runtime
from advxai.stages.audio import train
from advxai.stages.settings import TrainSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    train(snakemake.input.train, snakemake.output[0], settings=TrainSettings.from_params(snakemake.params.train),
          seed=int(snakemake.wildcards.seed), device=runtime.use_device(snakemake.params.device))
