# Tables (CSV + Markdown beside the paper's values) and figures; all go into `snakemake --report`.
# The report stages get their inputs as lists in the order that params state (models,
# (model, segmentation) pairs, experiment seeds, figure records): no file name is parsed back.
# They read small per-shard summaries and draw figures: on a cluster they run on the submitting
# host (docs/cluster.md, "Local rules").

localrules: image_tables, image_figures, audio_tables, audio_figures, findings, image_explanation_figures, image_example_figures,
    image_refined_figure, audio_refined_figure


rule image_tables:
    input:
        unpack(image_report_inputs),
    output:
        accuracy=report("results/tables/image_accuracy.csv", category="Image", subcategory="Tables", caption="../report/image_accuracy.rst"),
        labelflip=report("results/tables/image_labelflip.csv", category="Image", subcategory="Tables", caption="../report/image_labelflip.rst"),
        localised=report("results/tables/image_localised.csv", category="Image", subcategory="Tables", caption="../report/image_localised.rst"),
        slic=report("results/tables/image_slic_segments.csv", category="Image", subcategory="Tables", caption="../report/image_slic.rst"),
        comparisons=report("results/tables/image_comparisons.csv", category="Image", subcategory="Tables", caption="../report/image_comparisons.rst"),
        markdown=report("results/tables/image_tables.md", category="Image", subcategory="Tables", caption="../report/image_markdown.rst"),
    params:
        models=image_models(),
        pairs=image_model_segmentations(),
        slic_models=slic_models(),
        k=IMAGE["labelflip"]["k"],
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_tables.log",
    script:
        "../../scripts/image_tables.py"


rule image_figures:
    input:
        labelflip="results/tables/image_labelflip.csv",
        localised="results/tables/image_localised.csv",
    output:
        report(image_figure_files(), category="Image", subcategory="Figures", caption="../report/image_figures.rst"),
    params:
        figures=image_figures(),
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_figures.log",
    script:
        "../../scripts/image_figures.py"


rule audio_tables:
    input:
        evaluations=expand("audio/svds/seed{seed}_eval.csv", seed=AUDIO["seeds"]),
        labelflips=audio_experiment_files("labelflip"),
        localised=audio_experiment_files("localised"),
    output:
        svds=report("results/tables/audio_svds.csv", category="Audio", subcategory="Tables", caption="../report/audio_svds.rst"),
        labelflip=report("results/tables/audio_labelflip.csv", category="Audio", subcategory="Tables", caption="../report/audio_labelflip.rst"),
        localised=report("results/tables/audio_localised.csv", category="Audio", subcategory="Tables", caption="../report/audio_localised.rst"),
        comparisons=report("results/tables/audio_comparisons.csv", category="Audio", subcategory="Tables", caption="../report/audio_comparisons.rst"),
        markdown=report("results/tables/audio_tables.md", category="Audio", subcategory="Tables", caption="../report/audio_markdown.rst"),
    params:
        experiment_seeds=audio_experiment_seeds(),
    conda:
        ADVXAI_ENV
    log:
        "logs/report/audio_tables.log",
    script:
        "../../scripts/audio_tables.py"


rule audio_figures:
    input:
        labelflip="results/tables/audio_labelflip.csv",
        localised="results/tables/audio_localised.csv",
        excerpts=audio_experiment_files("excerpts"),
        explanations=audio_experiment_files("explanations"),
    output:
        fig2=report("results/figures/audio_fig2.png", category="Audio", subcategory="Figures", caption="../report/audio_fig2.rst"),
        fig3=report("results/figures/audio_fig3.png", category="Audio", subcategory="Figures", caption="../report/audio_fig3.rst"),
        excerpt=report("results/figures/audio_excerpt.png", category="Audio", subcategory="Figures", caption="../report/audio_excerpt.rst"),
    conda:
        ADVXAI_ENV
    log:
        "logs/report/audio_figures.log",
    script:
        "../../scripts/audio_figures.py"


# The paper's conclusions (§7), each decided on this run's per-item outcomes (docs/findings.md).
rule findings:
    input:
        unpack(findings_inputs),
    output:
        markdown=report("results/findings.md", category="Findings", caption="../report/findings_markdown.rst"),
        table=report("results/tables/findings.csv", category="Findings", caption="../report/findings_table.rst"),
    params:
        models=image_models(),
        pairs=image_model_segmentations(),
        experiment_seeds=audio_experiment_seeds() if AUDIO["enabled"] else [],
        k=IMAGE["labelflip"]["k"],
    conda:
        ADVXAI_ENV
    log:
        "logs/report/findings.log",
    script:
        "../../scripts/findings.py"
# The method figures draw the example items (image.examples) that image_examples / audio_examples chose and explained.
rule image_explanation_figures:
    input:
        examples="image/{model}/examples.h5",
    output:
        fig1=report(
            "results/figures/image_fig1_{model}_{seg}.png", category="Image", subcategory="Examples",
            caption="../report/image_fig1.rst",
        ),
        fig9=report(
            "results/figures/image_fig9_{model}_{seg}.png", category="Image", subcategory="Examples",
            caption="../report/image_fig9.rst",
        ),
    wildcard_constraints:
        seg="rect|slic",
    params:
        figure="explanations",
        model="{model}",
        segmentation="{seg}",
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_explanation_figures_{model}_{seg}.log",
    script:
        "../../scripts/image_method_figures.py"


rule image_example_figures:
    input:
        examples="image/{model}/examples.h5",
    output:
        fig4=report(
            "results/figures/image_fig4_{model}.png", category="Image", subcategory="Examples",
            caption="../report/image_fig4.rst",
        ),
        fig10=report(
            "results/figures/image_fig10_{model}.png", category="Image", subcategory="Examples",
            caption="../report/image_fig10.rst",
        ),
    params:
        figure="examples",
        model="{model}",
        segmentations=IMAGE["segmentations"],
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_example_figures_{model}.log",
    script:
        "../../scripts/image_method_figures.py"


rule image_refined_figure:
    input:
        examples="image/{model}/examples.h5",
    output:
        report(
            "results/figures/image_refined_{model}_{seg}.png", category="Image", subcategory="Examples",
            caption="../report/image_refined.rst",
        ),
    wildcard_constraints:
        seg="rect|slic",
    params:
        figure="refined",
        model="{model}",
        segmentation="{seg}",
        ks=IMAGE["localised"]["ks"],
        explainers=localised_explainer_names(),
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_refined_figure_{model}_{seg}.log",
    script:
        "../../scripts/image_method_figures.py"


rule audio_refined_figure:
    input:
        example="audio/examples/seed{seed}.h5",
    output:
        report(
            "results/figures/audio_refined_seed{seed}.png", category="Audio", subcategory="Figures",
            caption="../report/audio_refined.rst",
        ),
    params:
        explainers=AUDIO["explainers"],
        seed="{seed}",
    conda:
        ADVXAI_ENV
    log:
        "logs/report/audio_refined_figure_seed{seed}.log",
    script:
        "../../scripts/audio_refined_figure.py"
