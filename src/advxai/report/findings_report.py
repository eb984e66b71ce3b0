"""The findings section in Markdown (the report's closing section) and as a CSV table, one row per claim."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..statistics import ALPHA
from .findings import Finding
from .tables import markdown_table
from .verdicts import NOT_IN_RUN, Decision

FINDINGS_COLUMNS = [
    "finding",
    "verdict",
    "part",
    "quantifier",
    "part_verdict",
    "subject",
    "numbers",
    "test",
    "p_support",
    "p_against",
    "holm_support",
    "holm_against",
    "status",
]
SHOWN_CLAIMS = 6
"""Claims listed per part in the Markdown (the CSV holds every one)."""


HOW_DECIDED = (
    "Each finding is decided by tests on this run's items: paired tests where two rankings score the same items "
    "(exact McNemar for label flips, a paired bootstrap for recovered fractions, a score interval for "
    "'at least on par'), Fisher's exact test between models, exact binomial tests against a threshold; "
    f"p-values are Holm-adjusted within each part (α = {ALPHA:.2f}). *holds*: significant in its favour "
    "(every comparison, or most where the paper says 'usually' or 'rarely'); "
    "*contradicted*: significant against it; *undecided at this N*: neither, at this number of items; "
    "*not in this run*: its models or domain did not run."
)


def summary(decision: Decision) -> str:
    """One line: how many claims, which test, how many in favour, against, not significant."""
    part = decision.part
    if decision.verdict == NOT_IN_RUN:
        return f"not in this run: {part.missing}"
    n = len(part.claims)
    if n == 0:
        return "no items to compare at this N"
    tests = ", ".join(dict.fromkeys(c.test for c in part.claims))
    n_for, n_against = int(decision.supported.sum()), int(decision.against.sum())
    return (
        f"{n} comparison{'s' * (n != 1)} ({tests}; Holm-adjusted, α = {ALPHA:.2f}; needs {part.quantifier}): "
        f"{n_for} in favour, {n_against} against, {n - n_for - n_against} not significant"
    )


def shown_claims(decision: Decision) -> list[int]:
    """Indices of the claims worth reading: those against (strongest first), then those not
    significant (closest to a decision first), then the weakest in favour."""

    def rank(i: int) -> tuple[int, float]:
        if decision.against[i]:
            return 0, decision.holm_against[i]
        if not decision.supported[i]:
            return 1, min(decision.holm_support[i], decision.holm_against[i])
        return 2, -decision.holm_support[i]

    return sorted(range(len(decision.part.claims)), key=rank)[:SHOWN_CLAIMS]


def _part_markdown(decision: Decision) -> list[str]:
    lines = [f"- *{decision.part.statement}*: **{decision.verdict}**. {summary(decision)}."]
    for i in shown_claims(decision):
        claim = decision.part.claims[i]
        lines.append(
            f"  - {claim.subject}: {claim.numbers}; Holm p in favour {decision.holm_support[i]:.3g}, "
            f"against {decision.holm_against[i]:.3g}: {decision.status(i)}"
        )
    hidden = len(decision.part.claims) - len(shown_claims(decision))
    if hidden > 0:
        lines.append(f"  - … and {hidden} more (results/tables/findings.csv)")
    return lines


def findings_markdown(findings: Sequence[Finding]) -> str:
    """The closing section: a verdict table, then each finding's parts with the tests and numbers behind them."""
    overview = [
        [f"({f.key})", f.statement, f"**{f.verdict}**", " / ".join(summary(d) for d in f.decisions)] for f in findings
    ]
    parts = [
        "# The paper's findings (§7), checked on this run",
        "",
        HOW_DECIDED,
        "",
        markdown_table(["", "finding", "verdict", "evidence"], overview),
    ]
    for finding in findings:
        parts += ["", f"## ({finding.key}) {finding.statement}", "", f"Verdict: **{finding.verdict}**.", ""]
        for decision in finding.decisions:
            parts += _part_markdown(decision)
    return "\n".join(parts) + "\n"


def findings_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """Every claim of every finding as a row; a part not in this run is one row without a test."""
    rows = []
    for finding in findings:
        for decision in finding.decisions:
            part = decision.part
            key = {
                "finding": finding.key,
                "verdict": finding.verdict,
                "part": part.statement,
                "quantifier": part.quantifier,
                "part_verdict": decision.verdict,
            }
            if not part.claims:
                rows.append({**key, "subject": part.missing or "no items", "status": decision.verdict})
            for i, claim in enumerate(part.claims):
                rows.append(
                    {
                        **key,
                        "subject": claim.subject,
                        "numbers": claim.numbers,
                        "test": claim.test,
                        "p_support": claim.p_support,
                        "p_against": claim.p_against,
                        "holm_support": float(decision.holm_support[i]),
                        "holm_against": float(decision.holm_against[i]),
                        "status": decision.status(i),
                    }
                )
    return pd.DataFrame(rows, columns=FINDINGS_COLUMNS)
