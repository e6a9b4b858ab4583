"""The report's charts as inline SVG, drawn by matplotlib (no script, no font or CDN fetch).

Figures are made with matplotlib's object API (no pyplot, no backend or global state). The
Kubeflow UI shows an ``HTML`` artifact in a sandboxed frame without network access, so
each chart is an ``<svg>`` element inside the page. Text stays text (``svg.fonttype:
none``), ids are salted with a fixed string and the date is left out, so the same figures
give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from components.report.figures import PLAN, REPORT, SUMMARIZE, TRANSCRIBE, Span

COLORS = {PLAN: "#8c959f", TRANSCRIBE: "#0969da", SUMMARIZE: "#bf8700", REPORT: "#1a7f37"}
_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "kfp-asr-report",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def timeline_svg(spans: Sequence[Span], origin: float) -> str:
    """Gantt chart: one lane per step group (plan, each shard, report), seconds from ``origin``."""
    lanes = list(dict.fromkeys(s.lane for s in spans))
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(8, 0.9 + 0.35 * len(lanes)))
        ax = fig.subplots()
        for span in spans:
            ax.broken_barh(
                [(span.start - origin, max(span.end - span.start, 1e-3))],
                (lanes.index(span.lane) - 0.35, 0.7),
                color=COLORS[span.step],
            )
        steps = [step for step in COLORS if any(s.step == step for s in spans)]
        ax.legend(
            handles=[Patch(color=COLORS[step], label=step) for step in steps],
            loc="lower right",
            ncols=len(steps) or 1,
            frameon=False,
            bbox_to_anchor=(1, 1),
        )
        ax.set_yticks(range(len(lanes)), lanes)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the plan started")
        ax.set_xlim(left=0)
        return _svg(fig)


def histogram_bins(values: Sequence[float], bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of non-negative ``values`` (numpy's histogram, at most ``bins`` bins;
    one value alone gets a bin of width 1 s from ``max(0, value - 0.5)``)."""
    data = np.asarray(values, dtype=float)
    low, high = float(data.min()), float(data.max())
    if low == high:
        return np.histogram(data, bins=1, range=(max(0.0, low - 0.5), high + 0.5))
    return np.histogram(data, bins=min(bins, len(np.unique(data))))


def histogram_svg(values: Sequence[float], xlabel: str, color: str = "#0969da") -> str:
    """Histogram of ``values`` with the count on the y axis."""
    counts, edges = histogram_bins(values)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(4.2, 2.4))
        ax = fig.subplots()
        ax.bar(edges[:-1], counts, np.diff(edges), align="edge", color=color, edgecolor="white")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("files")
        ax.yaxis.get_major_locator().set_params(integer=True)
        return _svg(fig)
