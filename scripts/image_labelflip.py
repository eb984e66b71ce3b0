"""Rule image_labelflip: see advxai.stages.image.labelflip_shard."""
from advxai import runtime
from advxai.stages.image import labelflip_shard
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.settings import LabelflipSettings, ModelSpec

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    labelflip_shard(
        ShardFiles(images=snakemake.input.images, adversaries=snakemake.input.adversaries, subset=snakemake.input.subset),
        snakemake.input.segments,
        list(snakemake.input.explanations),
        snakemake.output[0],
        model=model,
        labelflip=LabelflipSettings.from_params(snakemake.params.labelflip),
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic, model.gpu_footprint_gib(snakemake.params.batch_size)),
    )
