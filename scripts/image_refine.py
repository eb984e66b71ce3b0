"""Rule image_refine: see advxai.stages.refine.refine_shard."""

from advxai import runtime
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.refine import refine_shard
from advxai.stages.settings import ModelSpec, RefineSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    refine_shard(
        ShardFiles(
            images=snakemake.input.images, adversaries=snakemake.input.adversaries, subset=snakemake.input.subset
        ),
        snakemake.input.segments,
        snakemake.output[0],
        model=model,
        refine_settings=RefineSettings.from_params(snakemake.params.refine),
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic),
    )
