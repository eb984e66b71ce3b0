"""Rule image_examples: the seeded example images of a model and what the method figures draw of them."""

from advxai import runtime
from advxai.stages.examples import ShardSources, image_examples
from advxai.stages.settings import ExamplesSettings, ModelSpec

with runtime.job(snakemake.log[0], snakemake.threads):
    model = ModelSpec.from_params(snakemake.params.model).reading(snakemake.input.weights)
    examples = ExamplesSettings.from_params(snakemake.params.examples)
    images, adversaries = list(snakemake.input.images), list(snakemake.input.adversaries)
    n = len(images)  # segments and refined list every segmentation's shards, segmentation after segmentation
    shards = [
        ShardSources(
            images[s],
            adversaries[s],
            {seg: snakemake.input.segments[i * n + s] for i, seg in enumerate(examples.segmentations)},
            {seg: snakemake.input.refined[i * n + s] for i, seg in enumerate(examples.segmentations)},
        )
        for s in range(n)
    ]
    image_examples(
        shards,
        snakemake.input.subset,
        snakemake.output[0],
        model=model,
        label=snakemake.params.label,
        examples=examples,
        batch_size=snakemake.params.batch_size,
        device=runtime.use_device(snakemake.params.device, model.arithmetic),
    )
