"""Rule audio_attack: C&W attack on the linear STFT of every test song (resumes per song)."""
from advxai import runtime
from advxai.stages.audio import attack
from advxai.stages.settings import AttackSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    attack(snakemake.input.detector, snakemake.input.evaluation, snakemake.input.test, snakemake.output[0],
           settings=AttackSettings.from_params(snakemake.params.attack), device=runtime.use_device(snakemake.params.device))
