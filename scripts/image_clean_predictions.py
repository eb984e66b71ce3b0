"""Rule image_clean_predictions: clean top-1/top-5 predictions of one shard."""
from advxai import runtime
from advxai.stages.image import clean_predictions
from advxai.stages.settings import ModelSpec

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    clean_predictions(
        snakemake.input.images,
        snakemake.output[0],
        model=model,
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic, model.gpu_footprint_gib(snakemake.params.batch_size)),
    )
