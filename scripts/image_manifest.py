"""Rule image_manifest: list the image data set once (paths relative to its root, labels, sizes)."""
from advxai import runtime
from advxai.data.image_items import write_image_manifest

with runtime.job(snakemake.log[0], snakemake.threads):
    write_image_manifest(snakemake.params.dataset, snakemake.input.get("root"), snakemake.output[0])
