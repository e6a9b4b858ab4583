"""Small statistics helpers for metrics (percentiles over latencies, TTFTs, durations)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, ``None`` entries ignored.

    Linear interpolation between closest ranks (numpy's default method), so
    ``percentile([1, 2, 3, 4], 50) == 2.5``. Returns ``None`` when there is no value.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)
