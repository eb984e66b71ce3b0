"""Rule image_localised: see advxai.stages.image.localised_shard."""
from advxai import runtime
from advxai.stages.image import localised_shard
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.settings import LocalisedSettings, ModelSpec

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    localised_shard(
        ShardFiles(images=snakemake.input.images, adversaries=snakemake.input.adversaries, subset=snakemake.input.subset),
        snakemake.input.segments,
        snakemake.input.refined,
        snakemake.output[0],
        model=model,
        localised=LocalisedSettings.from_params(snakemake.params.localised),
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic, model.gpu_footprint_gib(snakemake.params.batch_size)),
    )
