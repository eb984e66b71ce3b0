"""Rule localised: see advxai.stages.image.localised_shard."""
from advxai import runtime
from advxai.stages.image import localised_shard

with runtime.job(snakemake.log[0], snakemake.threads):
    localised_shard(
        dict(snakemake.input.items()),
        snakemake.output[0],
        model=snakemake.params.model,
        localised=snakemake.params.localised,
        batch_size=snakemake.params.batch_size,
        device=runtime.resolve_device(snakemake.params.device),
    )
