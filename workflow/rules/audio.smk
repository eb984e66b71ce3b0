# Audio domain: corpus -> features -> detector per seed -> evaluation ->
# C&W spectrogram adversaries -> excerpts -> explanations -> label flips / localised recovery.
# Every seed of audio.seeds is trained and evaluated; the attack experiments run on
# audio.experiment_seeds (the report rules in report.smk request only those).


rule audio_synthetic_corpus:
    output:
        directory("audio/corpus"),
    params:
        corpus=synthetic_corpus_params(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/corpus.log",
    benchmark:
        "logs/benchmarks/audio/corpus.tsv"
    script:
        "../../scripts/audio_synthetic_corpus.py"


rule audio_manifest:
    input:
        corpus=corpus_input(),
    output:
        "audio/manifest.csv",
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/manifest.log",
    script:
        "../../scripts/audio_manifest.py"


rule audio_features:
    input:
        manifest="audio/manifest.csv",
        corpus=corpus_input(),
    output:
        "audio/features/{split}.h5",
    params:
        split="{split}",
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/features/{split}.log",
    benchmark:
        "logs/benchmarks/audio/features/{split}.tsv"
    script:
        "../../scripts/audio_features.py"


rule audio_train_detector:
    input:
        train="audio/features/train.h5",
    output:
        "audio/svds/seed{seed}.h5",
    params:
        train=AUDIO["train"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/svds/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/svds/seed{seed}.tsv"
    script:
        "../../scripts/audio_train_detector.py"


rule audio_evaluate_detector:
    input:
        detector="audio/svds/seed{seed}.h5",
        valid="audio/features/valid.h5",
        test="audio/features/test.h5",
    output:
        "audio/svds/seed{seed}_eval.csv",
    params:
        median_filter=AUDIO["median_filter"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/svds/seed{seed}_eval.log",
    benchmark:
        "logs/benchmarks/audio/svds/seed{seed}_eval.tsv"
    script:
        "../../scripts/audio_evaluate_detector.py"


rule audio_attack:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        test="audio/features/test.h5",
    output:
        "audio/adversaries/seed{seed}.h5",
    params:
        attack=AUDIO["attack"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/adversaries/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/adversaries/seed{seed}.tsv"
    script:
        "../../scripts/audio_attack.py"


rule audio_excerpts:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        test="audio/features/test.h5",
        adversaries="audio/adversaries/seed{seed}.h5",
    output:
        "audio/excerpts/seed{seed}.h5",
    params:
        excerpts=audio_excerpt_params,
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/excerpts/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/excerpts/seed{seed}.tsv"
    script:
        "../../scripts/audio_excerpts.py"


rule audio_explain:
    input:
        detector="audio/svds/seed{seed}.h5",
        excerpts="audio/excerpts/seed{seed}.h5",
    output:
        "audio/explanations/seed{seed}.h5",
    params:
        explain=audio_explain_params,
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/explanations/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/explanations/seed{seed}.tsv"
    script:
        "../../scripts/audio_explain.py"


rule audio_labelflip:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        excerpts="audio/excerpts/seed{seed}.h5",
        explanations="audio/explanations/seed{seed}.h5",
    output:
        "audio/labelflip/seed{seed}.h5",
    params:
        ks=AUDIO["labelflip_ks"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/labelflip/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/labelflip/seed{seed}.tsv"
    script:
        "../../scripts/audio_labelflip.py"


rule audio_refine:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        excerpts="audio/excerpts/seed{seed}.h5",
    output:
        "audio/refined/seed{seed}.h5",
    params:
        ks=AUDIO["localised_ks"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/refined/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/refined/seed{seed}.tsv"
    script:
        "../../scripts/audio_refine.py"


rule audio_localised:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        excerpts="audio/excerpts/seed{seed}.h5",
        refined="audio/refined/seed{seed}.h5",
    output:
        "audio/localised/seed{seed}.h5",
    params:
        explain=audio_explain_params,
        ks=AUDIO["localised_ks"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/localised/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/localised/seed{seed}.tsv"
    script:
        "../../scripts/audio_localised.py"



rule audio_examples:
    input:
        detector="audio/svds/seed{seed}.h5",
        evaluation="audio/svds/seed{seed}_eval.csv",
        excerpts="audio/excerpts/seed{seed}.h5",
        refined="audio/refined/seed{seed}.h5",
    output:
        "audio/examples/seed{seed}.h5",
    params:
        explain=audio_explain_params,
        ks=AUDIO["localised_ks"],
        seed=config["seed"],
        device=device_param(),
    threads: 1
    resources:
        gpu=job_gpus(),
        gpu_share=audio_gpu_share(),
    conda:
        ADVXAI_ENV
    log:
        "logs/audio/examples/seed{seed}.log",
    benchmark:
        "logs/benchmarks/audio/examples/seed{seed}.tsv"
    script:
        "../../scripts/audio_examples.py"
