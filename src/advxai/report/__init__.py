"""Report: result tables (CSV, Markdown beside the paper's values) and figures, from the per-shard files."""
