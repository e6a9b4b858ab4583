"""The report's pages: one self-contained HTML page (charts inline) and its Markdown twin.

Both show, in this order: the catalogue's totals and this run's; the time figures
(makespan, mean and max shard completion time) with the per-shard timeline (HTML: a chart;
Markdown: the table's start and end offsets) and a per-shard table with the real-time
factor; the TTFT and audio duration distributions (HTML: histograms; Markdown: their bins);
failures with their reasons; the per-file table. Every text that comes from a transcript,
a summary or an object key is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from components.common.records import OK
from components.report.charts import histogram_bins, histogram_svg, timeline_svg
from components.report.figures import RunFigures


@dataclass(frozen=True)
class ReportOptions:
    """How the report looks."""

    title: str = "Transcription and summary report"
    #: Summaries longer than this are cut in the table (the export keeps them whole).
    summary_chars: int = 600


@dataclass(frozen=True)
class FileRow:
    """One line of the report's per-file table."""

    source: str
    name: str
    status: str
    error: str | None
    duration_s: float | None
    language: str | None
    real_time_factor: float | None
    summary: str
    transcribed: bool
    speakers: str = ""  # talk time per labelled speaker (components.report.speakers)


@dataclass(frozen=True)
class Page:
    """Everything a page shows."""

    rows: Sequence[FileRow]
    metrics: dict[str, float | int]
    figures: RunFigures
    ttft_s: list[float] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)
    run: str = ""
    #: Prefix of the links to text and subtitles (``../../`` for the copy under runs/<run>/).
    link_root: str = ""
    #: Objects under the input prefix the plan did not take as audio: (name, reason).
    ignored: Sequence[tuple[str, str]] = ()


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


_CATALOGUE = [
    ("catalogue_files", "inputs in the catalogue"),
    ("catalogue_ok", "transcribed ok"),
    ("catalogue_failed", "failed (retried by the next run)"),
    ("catalogue_audio_hours", "audio hours"),
    ("catalogue_summaries_ok", "summaries ok"),
    ("catalogue_added", "added by this run"),
    ("catalogue_replaced", "replaced by this run (changed or retried)"),
    ("catalogue_restored", "restored from stored records"),
    ("catalogue_removed", "removed (deleted from the bucket)"),
]
_TOTALS = [
    ("files_total", "files"),
    ("files_processed", "processed by this run"),
    ("files_skipped", "skipped (finished earlier)"),
    ("files_ok", "ok"),
    ("files_failed", "failed"),
    ("files_lost", "lost (no task reported)"),
    ("audio_hours", "audio hours"),
    ("real_time_factor", "real-time factor (audio s per processing s)"),
    ("summaries_ok", "summaries ok"),
    ("summaries_failed", "summaries failed"),
    ("ttft_p50_s", "TTFT p50 (s)"),
    ("ttft_p95_s", "TTFT p95 (s)"),
    ("wer", "WER"),
    ("wer_files", "files with a reference"),
]
_TIME = [
    ("makespan_s", "makespan (s): plan start to the last shard's end"),
    ("mean_shard_completion_s", "mean shard completion time (s): plan end to shard end"),
    ("max_shard_completion_s", "max shard completion time (s)"),
    ("shards", "shards with work"),
]
_SHARD_HEAD = [
    "shard",
    "files",
    "ok",
    "audio (s)",
    "transcribe (s)",
    "RTF",
    "summarize (s)",
    "completion (s)",
]


def _pairs(metrics: dict[str, float | int], keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(label, str(metrics[key])) for key, label in keys if key in metrics]


def _shard_cells(figures: RunFigures) -> list[list[str]]:
    return [
        [
            str(r.shard),
            str(r.files),
            str(r.files_ok),
            _fmt(r.audio_s, ".1f"),
            _fmt(r.transcribe_s, ".1f"),
            _fmt(r.real_time_factor, ".3g"),
            _fmt(r.summarize_s, ".1f"),
            _fmt(r.completion_s, ".1f"),
        ]
        for r in figures.shards
    ]


def _span_cells(figures: RunFigures) -> list[list[str]]:
    origin = figures.origin or 0.0
    return [
        [s.lane, s.step, f"{s.start - origin:.1f}", f"{s.end - origin:.1f}"] for s in figures.spans
    ]


def _bin_cells(values: list[float]) -> list[list[str]]:
    counts, edges = histogram_bins(values)
    return [
        [f"{lo:.2f} – {hi:.2f}", str(int(n))]
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _links(row: FileRow) -> list[tuple[str, str]]:
    """Relative links to a row's exported files, percent-encoded: a name such as
    ``q?x=1#h.wav`` or ``%2e%2e/x.wav`` stays one path below the report."""
    if not row.transcribed:
        return []
    return [
        (label, quote(f"{folder}/{row.name}.{ext}"))
        for label, folder, ext in (
            ("text", "text", "txt"),
            ("srt", "subtitles", "srt"),
            ("vtt", "subtitles", "vtt"),
        )
    ]


def _md_cell(text: str) -> str:
    """Table-cell text: HTML escaped (Markdown viewers render HTML), pipes escaped, one line."""
    return (
        html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    )


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows),
    ]


def render_markdown(page: Page, options: ReportOptions) -> str:
    """The report as Markdown (KFP ``Markdown`` artifact and ``report.md``)."""
    m = page.metrics
    lines = [f"# {options.title}", ""]
    if page.run:
        lines += [f"Run `{_md_cell(page.run)}`.", ""]
    for heading, keys in (("Catalogue", _CATALOGUE), ("This run", _TOTALS), ("Time", _TIME)):
        pairs = _pairs(m, keys)
        if pairs:
            lines += [f"## {heading}", "", *_md_table(["", ""], [list(p) for p in pairs]), ""]
    if page.figures.shards:
        lines += ["### Shards", "", *_md_table(_SHARD_HEAD, _shard_cells(page.figures)), ""]
    if page.figures.spans:
        head = ["lane", "step", "start (s)", "end (s)"]
        lines += ["### Timeline", "", *_md_table(head, _span_cells(page.figures)), ""]
    for heading, values in (("TTFT (s)", page.ttft_s), ("Audio duration (s)", page.durations_s)):
        if values:
            lines += [f"### {heading}", "", *_md_table(["bin", "files"], _bin_cells(values)), ""]
    failures = [r for r in page.rows if r.status != OK]
    if failures:
        lines += ["## Failures", ""]
        lines += [
            f"- `{_md_cell(r.name)}` ({r.status}): {_md_cell(r.error or '')}" for r in failures
        ]
        lines.append("")
    if page.ignored:
        lines += ["## Not processed (not audio inputs)", ""]
        lines += [f"- `{_md_cell(name)}`: {_md_cell(reason)}" for name, reason in page.ignored]
        lines.append("")
    lines += [
        "## Files",
        "",
        "| file | duration (s) | status | language | RTF | summary | transcript |",
        "|---|---:|---|---|---:|---|---|",
    ]
    for r in page.rows:
        links = " ".join(f"[{label}]({page.link_root}{href})" for label, href in _links(r))
        lines.append(
            f"| {_md_cell(r.name)}{_md_cell(f' ({r.speakers})' if r.speakers else '')} | "
            f"{_fmt(r.duration_s, '.1f')} | {r.status} | "
            f"{r.language or ''} | {_fmt(r.real_time_factor, '.1f')} | "
            f"{_md_cell(_cut(r.summary, options.summary_chars))} | {links} |"
        )
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #d0d7de;padding:.35rem .6rem;vertical-align:top;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed,tr.lost{background:#fff1f0}.status-ok{color:#1a7f37}
.status-failed,.status-lost{color:#cf222e;font-weight:600}.summary{max-width:40rem}
.totals td:first-child{color:#57606a}
.row{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}
figure{margin:.5rem 0}figcaption{color:#57606a;font-size:.9rem}svg{max-width:100%;height:auto}
"""


#: The page loads nothing: no script, no font, no image from anywhere (a browser blocks and
#: reports any attempt), so it shows the same in the Kubeflow UI's sandbox and offline.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _html_totals(pairs: list[tuple[str, str]]) -> str:
    e = html.escape
    cells = "".join(
        f'<tr><td>{e(label)}</td><td class="num">{e(value)}</td></tr>' for label, value in pairs
    )
    return f'<table class="totals">{cells}</table>'


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{e(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _figure(svg: str, caption: str, name: str) -> str:
    return (
        f'<figure class="chart" id="{name}">{svg}<figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
    )


def render_html(page: Page, options: ReportOptions) -> str:
    """The report as one self-contained HTML page (KFP ``HTML`` artifact and ``report.html``)."""
    e = html.escape
    m, figures = page.metrics, page.figures
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{e(options.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(options.title)}</h1>",
    ]
    if page.run:
        out.append(f"<p>Run <code>{e(page.run)}</code></p>")
    out.append('<div class="row">')
    for heading, keys in (("Catalogue", _CATALOGUE), ("This run", _TOTALS), ("Time", _TIME)):
        pairs = _pairs(m, keys)
        if pairs:
            out.append(f"<section><h2>{heading}</h2>{_html_totals(pairs)}</section>")
    out.append("</div>")
    if figures.spans and figures.origin is not None:
        out.append("<h2>Timeline</h2>")
        caption = "Each step's start and end, seconds since the plan started."
        out.append(_figure(timeline_svg(figures.spans, figures.origin), caption, "timeline"))
    if figures.shards:
        out.append("<h2>Shards</h2>" + _html_table(_SHARD_HEAD, _shard_cells(figures)))
    charts = [
        (page.ttft_s, "time to first token (s)", "TTFT of this run's summaries", "ttft"),
        (page.durations_s, "audio duration (s)", "Audio durations of this run's files", "audio"),
    ]
    drawn = [
        _figure(histogram_svg(values, label), caption, name)
        for values, label, caption, name in charts
        if values
    ]
    if drawn:
        out.append('<h2>Distributions</h2><div class="row">' + "".join(drawn) + "</div>")
    failures = [r for r in page.rows if r.status != OK]
    if failures:
        out.append("<h2>Failures</h2><ul>")
        out += [
            f"<li><code>{e(r.name)}</code> ({e(r.status)}): {e(r.error or '')}</li>"
            for r in failures
        ]
        out.append("</ul>")
    if page.ignored:
        out.append("<h2>Not processed (not audio inputs)</h2><ul>")
        out += [f"<li><code>{e(name)}</code>: {e(reason)}</li>" for name, reason in page.ignored]
        out.append("</ul>")
    out.append(
        "<h2>Files</h2><table><tr><th>file</th><th>duration (s)</th><th>status</th>"
        "<th>language</th><th>RTF</th><th>summary</th><th>transcript</th></tr>"
    )
    for r in page.rows:
        links = " ".join(
            f'<a href="{e(page.link_root + href)}">{label}</a>' for label, href in _links(r)
        )
        out.append(
            f'<tr class="{e(r.status)}"><td>{e(r.name)}'
            f"{f'<br><small>{e(r.speakers)}</small>' if r.speakers else ''}</td>"
            f'<td class="num">{_fmt(r.duration_s, ".1f")}</td>'
            f'<td class="status-{e(r.status)}">{e(r.status)}</td><td>{e(r.language or "")}</td>'
            f'<td class="num">{_fmt(r.real_time_factor, ".1f")}</td>'
            f'<td class="summary">{e(_cut(r.summary, options.summary_chars))}</td>'
            f"<td>{links}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"
