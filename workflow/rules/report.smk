# Tables (CSV + Markdown beside the paper's values) and figures; all go into `snakemake --report`.


rule image_tables:
    input:
        unpack(image_table_inputs),
    output:
        accuracy=report("results/tables/image_accuracy.csv", category="Image", subcategory="Tables", caption="../report/image_accuracy.rst"),
        labelflip=report("results/tables/image_labelflip.csv", category="Image", subcategory="Tables", caption="../report/image_labelflip.rst"),
        localised=report("results/tables/image_localised.csv", category="Image", subcategory="Tables", caption="../report/image_localised.rst"),
        slic=report("results/tables/image_slic_segments.csv", category="Image", subcategory="Tables", caption="../report/image_slic.rst"),
        markdown=report("results/tables/image_tables.md", category="Image", subcategory="Tables", caption="../report/image_markdown.rst"),
    params:
        models=image_models(),
        segmentations=IMAGE["segmentations"],
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
    conda:
        ADVXAI_ENV
    log:
        "logs/report/image_figures.log",
    script:
        "../../scripts/image_figures.py"
