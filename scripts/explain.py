"""Rule explain: see advxai.stages.image.explain_shard."""
from advxai import runtime
from advxai.stages.image import explain_shard

with runtime.job(snakemake.log[0], snakemake.threads):
    explain_shard(
        dict(snakemake.input.items()),
        snakemake.output[0],
        model=snakemake.params.model,
        explain=snakemake.params.explain,
        batch_size=snakemake.params.batch_size,
        device=runtime.resolve_device(snakemake.params.device),
    )
