# Image domain: shards -> clean predictions -> targeted PGD -> subsets ->
# segmentations -> explanations -> label flips / localised recovery. Tables in report.smk.


# Listing the data set and drawing the subsets are cheap I/O: on a cluster they run on the
# submitting host. The manifest completes the DAG as soon as it is written; the subset draw is
# re-created when the manifest checkpoint completes, and Snakemake 9 submits such a re-created
# job twice when it is grouped (docs/cluster.md, "Local rules").
localrules: image_manifest, image_subsets, image_weights


# A model's weights file, fetched once on the submitting host (compute nodes may have no
# internet) and verified against the sha256 prefix in its name; model jobs read it as an input.
# A file already there (copied by hand) is kept; one in $TORCH_HOME's hub cache is copied.
rule image_weights:
    output:
        f"{WEIGHTS_FOLDER}/{{file}}",
    params:
        url=weights_fetch_url,
    wildcard_constraints:
        file="[^/]+",
    conda:
        ADVXAI_ENV
    log:
        "logs/resources/weights/{file}.log",
    script:
        "../../scripts/image_weights.py"


checkpoint image_manifest:
    input:
        unpack(image_manifest_inputs),
    output:
        "image/data/{dataset}/manifest.csv",
    params:
        dataset=IMAGE["dataset"],
    conda:
        ADVXAI_ENV
    log:
        "logs/image/data/{dataset}/manifest.log",
    script:
        "../../scripts/image_manifest.py"


rule image_shard:
    input:
        unpack(image_shard_inputs),
    output:
        "image/data/{dataset}/{resize}-{crop}/shard{shard}.h5",
    params:
        dataset=dataset_params,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/data/{dataset}/{resize}-{crop}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/data/{dataset}/{resize}-{crop}/shard{shard}.tsv"
    script:
        "../../scripts/image_shard.py"


rule image_clean_predictions:
    input:
        images=image_shard_file,
        weights=model_weights_file,
    output:
        "image/{model}/clean/shard{shard}.h5",
    params:
        model=model_spec,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/clean/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/clean/shard{shard}.tsv"
    script:
        "../../scripts/image_clean_predictions.py"


rule image_attack:
    input:
        images=image_shard_file,
        weights=model_weights_file,
        clean="image/{model}/clean/shard{shard}.h5",
    output:
        "image/{model}/adversaries/shard{shard}.h5",
    params:
        model=model_spec,
        pgd=pgd_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/adversaries/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/adversaries/shard{shard}.tsv"
    script:
        "../../scripts/image_attack.py"


rule image_subsets:
    input:
        adversaries=adversary_shards,
    output:
        "image/{model}/subset.h5",
    params:
        subset=subset_params,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/subset.log",
    script:
        "../../scripts/image_subsets.py"


rule image_segments:
    input:
        images=image_shard_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
    output:
        "image/{model}/segments/{seg}/shard{shard}.h5",
    params:
        segmentation=segmentation_params,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/segments/{seg}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/segments/{seg}/shard{shard}.tsv"
    script:
        "../../scripts/image_segments.py"


rule image_explain:
    input:
        images=image_shard_file,
        weights=model_weights_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
        segments=explain_segment_files,
    output:
        "image/{model}/explanations/{family}/shard{shard}.h5",
    params:
        model=model_spec,
        explain=explain_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/explanations/{family}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/explanations/{family}/shard{shard}.tsv"
    script:
        "../../scripts/image_explain.py"


rule image_labelflip:
    input:
        images=image_shard_file,
        weights=model_weights_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
        segments="image/{model}/segments/{seg}/shard{shard}.h5",
        explanations=labelflip_explanation_files,
    output:
        "image/{model}/labelflip/{seg}/shard{shard}.h5",
    params:
        model=model_spec,
        labelflip=labelflip_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/labelflip/{seg}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/labelflip/{seg}/shard{shard}.tsv"
    script:
        "../../scripts/image_labelflip.py"


rule image_refine:
    input:
        images=image_shard_file,
        weights=model_weights_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
        segments="image/{model}/segments/{seg}/shard{shard}.h5",
    output:
        "image/{model}/refined/{seg}/shard{shard}.h5",
    params:
        model=model_spec,
        refine=refine_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/refined/{seg}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/refined/{seg}/shard{shard}.tsv"
    script:
        "../../scripts/image_refine.py"


rule image_localised:
    input:
        images=image_shard_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
        segments="image/{model}/segments/{seg}/shard{shard}.h5",
        refined="image/{model}/refined/{seg}/shard{shard}.h5",
        weights=model_weights_file,
    output:
        "image/{model}/localised/{seg}/shard{shard}.h5",
    params:
        model=model_spec,
        localised=localised_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/localised/{seg}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/image/{model}/localised/{seg}/shard{shard}.tsv"
    script:
        "../../scripts/image_localised.py"


rule image_examples:
    input:
        unpack(image_example_inputs),
    output:
        "image/{model}/examples.h5",
    params:
        model=model_spec,
        label="{model}",
        examples=examples_params,
        batch_size=IMAGE["batch_size"],
        device=device_param(),
    threads: 2  # the last image job, mostly alone: a second core shortens the run's tail
    resources:
        gpu=job_gpus(),
        gpu_share=image_gpu_share,
    conda:
        ADVXAI_ENV
    log:
        "logs/image/{model}/examples.log",
    benchmark:
        "logs/benchmarks/image/{model}/examples.tsv"
    script:
        "../../scripts/image_examples.py"
