"""Rule labelflip: see advxai.stages.image.labelflip_shard."""
from advxai import runtime
from advxai.stages.image import labelflip_shard

with runtime.job(snakemake.log[0], snakemake.threads):
    labelflip_shard(
        dict(snakemake.input.items()),
        snakemake.output[0],
        model=snakemake.params.model,
        labelflip=snakemake.params.labelflip,
        batch_size=snakemake.params.batch_size,
        device=runtime.resolve_device(snakemake.params.device),
    )
