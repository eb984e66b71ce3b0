# advxai — adversarial ground truth for explainers (Hoedt, Praher, Flexer & Widmer 2022/23).
#   snakemake --cores all                                   the embedded default (config.yaml)
#   snakemake --cores all --configfile presets/test.yaml    tiny, what the tests run
#   snakemake --workflow-profile profiles/slurm --configfile presets/paper.yaml   the paper sweep
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, schema="workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/image.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
