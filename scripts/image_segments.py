"""Rule image_segments: rectangles or SLIC segment maps of one shard's subset images."""
from advxai import runtime
from advxai.stages.image_segments import segment_shard
from advxai.stages.settings import SegmentationSettings

with runtime.job(snakemake.log[0], snakemake.threads):
    segment_shard(
        snakemake.input.images,
        snakemake.input.adversaries,
        snakemake.input.subset,
        snakemake.output[0],
        segmentation=SegmentationSettings.from_params(snakemake.params.segmentation),
    )
