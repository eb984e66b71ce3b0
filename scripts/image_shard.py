"""Rule image_shard: decode, resize and centre-crop one shard of the manifest's items."""
from advxai import runtime
from advxai.stages.image_shards import build_image_shard
from advxai.stages.settings import ShardSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    build_image_shard(snakemake.input.manifest, snakemake.input.get("root"), snakemake.output[0],
                      ShardSettings.from_params(snakemake.params.dataset))
