"""Rule image_attack: targeted PGD on one shard (resumes from finished batches)."""
from advxai import runtime
from advxai.stages.image import attack_shard
from advxai.stages.settings import ModelSpec, PgdSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    attack_shard(
        snakemake.input.images,
        snakemake.input.clean,
        snakemake.output[0],
        model=model,
        pgd=PgdSettings.from_params(snakemake.params.pgd),
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic, model.gpu_footprint_gib(snakemake.params.batch_size)),
    )
