"""KFP wrapper of :mod:`components.report.report` (no ``from __future__``: KFP reads the types)."""

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.common.kfp_helpers import lightweight


def report(
    manifest: Input[Dataset],
    transcripts: Input[list[Dataset]],
    summaries: Input[list[Dataset]],
    report_html: Output[HTML],
    report_md: Output[Markdown],
    metrics: Output[Metrics],
    input_uri: str,
    output_uri: str,
    run_id: str = "",
    redact: str = "outputs",
):
    """Join every shard's records into the catalogue, a report with figures, and metrics.

    Args:
        manifest: The plan's manifest of every input file.
        transcripts: The transcribe outputs of every shard.
        summaries: The summarize outputs of every shard.
        input_uri: The input prefix; names in the report and the export are relative to it.
        output_uri: The output prefix (s3:// or a local folder): its transcripts.jsonl,
            summaries.jsonl and catalog/ Parquet dataset hold every input's latest records;
            runs/<run>/ keeps this run's manifest, records, metrics and report.
        run_id: The pipeline run's id, part of the runs/<run>/ folder name.
        redact: Personal data: none, outputs or before_llm; unless none, whatever is not
            redacted yet is redacted before the catalogue, the pages and the export.

    Returns:
        report_html: Catalogue and run totals, makespan and shard completion times, a
            per-shard timeline, TTFT and audio duration histograms, failures, per-file table.
        report_md: The same report as Markdown (figures as tables).
        metrics: Files total, processed, skipped, ok, failed; audio hours, real-time
            factor, TTFT p50/p95, WER; makespan_s, mean_shard_completion_s,
            max_shard_completion_s; the catalogue's totals.
    """
    from components.common.redact import check_mode
    from components.report.report import run_report_step

    result = run_report_step(
        manifest.path,
        [t.path for t in transcripts],
        [s.path for s in summaries],
        input_uri,
        output_uri,
        run_id,
        redact=check_mode(redact),
    )
    with open(report_html.path, "w", encoding="utf-8") as f:
        f.write(result.html)
    with open(report_md.path, "w", encoding="utf-8") as f:
        f.write(result.markdown)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)


report_op = lightweight(report)
