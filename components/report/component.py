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
):
    """Join every shard's transcripts and summaries into a report, metrics and an export.

    Args:
        manifest: The plan's manifest of every input file.
        transcripts: The transcribe outputs of every shard.
        summaries: The summarize outputs of every shard.
        input_uri: The input prefix; names in the report and the export are relative to it.
        output_uri: Where the export goes (s3:// prefix or local folder); its transcripts.jsonl
            and summaries.jsonl hold the inputs this run processed.

    Returns:
        report_html: Per-file table, failures first, with totals and transcript links.
        report_md: The same report as Markdown.
        metrics: Files total, processed by this run, skipped (finished earlier), ok and
            failed; audio hours, real-time factor, TTFT p50/p95, WER.
    """
    from components.report.report import ReportOptions, build_report, export

    result = build_report(
        manifest.path,
        [t.path for t in transcripts],
        [s.path for s in summaries],
        input_uri,
        ReportOptions(),
    )
    export(output_uri, result)
    with open(report_html.path, "w", encoding="utf-8") as f:
        f.write(result.html)
    with open(report_md.path, "w", encoding="utf-8") as f:
        f.write(result.markdown)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)


report_op = lightweight(report)
