"""Rule findings: the paper's conclusions (§7) checked on this run's per-item outcomes, as Markdown and CSV."""

from advxai import runtime
from advxai.stages.report import write_findings

with runtime.job(snakemake.log[0], snakemake.threads):
    write_findings(
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        models=snakemake.params.models,
        pairs=snakemake.params.pairs,
        experiment_seeds=snakemake.params.experiment_seeds,
        k=snakemake.params.k,
    )
