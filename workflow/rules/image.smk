# Image domain: shards -> clean predictions -> targeted PGD -> subsets ->
# segmentations -> explanations -> label flips / localised recovery. Tables in report.smk.


# Listing the data set and drawing the subsets are cheap I/O: on a cluster they run on the
# submitting host. The manifest completes the DAG as soon as it is written; the subset draw is
# re-created when the manifest checkpoint completes, and Snakemake 9 submits such a re-created
# job twice when it is grouped (docs/cluster.md, "Local rules").
localrules: image_manifest, subsets, image_weights


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


rule clean_predictions:
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
        "../../scripts/clean_predictions.py"


rule attack:
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
        "../../scripts/attack.py"


rule subsets:
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
        "../../scripts/subsets.py"


rule segments:
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
        "../../scripts/segments.py"


rule explain:
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
        "../../scripts/explain.py"


rule labelflip:
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
        "../../scripts/labelflip.py"


rule localised:
    input:
        images=image_shard_file,
        weights=model_weights_file,
        adversaries="image/{model}/adversaries/shard{shard}.h5",
        subset="image/{model}/subset.h5",
        segments="image/{model}/segments/{seg}/shard{shard}.h5",
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
        "../../scripts/localised.py"
