"""Rule image_explain: see advxai.stages.image.explain_shard."""
from advxai import runtime
from advxai.stages.image import explain_shard
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.settings import ExplainFamilySettings, ModelSpec

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    explain = ExplainFamilySettings.from_params(snakemake.params.explain)
    explain_shard(
        ShardFiles(images=snakemake.input.images, adversaries=snakemake.input.adversaries, subset=snakemake.input.subset),
        dict(zip(explain.segmentations, snakemake.input.segments, strict=True)),
        snakemake.output[0],
        model=model,
        explain=explain,
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic, model.gpu_footprint_gib(snakemake.params.batch_size)),
    )
