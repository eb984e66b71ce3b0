"""Rule audio_localised: refine with the top-k norm segments, re-explain, count recovered segments."""
from advxai import runtime
from advxai.stages.audio import localised

with runtime.job(snakemake.log[0], snakemake.threads):
    localised(dict(snakemake.input.items()), snakemake.output[0], explain=snakemake.params.explain, ks=snakemake.params.ks, device=runtime.resolve_device(snakemake.params.device))
