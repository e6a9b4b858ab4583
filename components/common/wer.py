"""Word error rate with a simple normaliser (lowercase, punctuation stripped)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PUNCT = re.compile(r"[^\w\s]|_")


def normalize(text: str) -> list[str]:
    """Lowercase ``text``, drop punctuation ("it's" becomes "its") and split into words."""
    return _PUNCT.sub(" ", text.lower().replace("'", "").replace("\u2019", "")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER of ``(reference, hypothesis)`` pairs: total edits over total reference words."""
    edits = words = 0
    for ref, hyp in pairs:
        r = normalize(ref)
        edits += edit_distance(r, normalize(hyp))
        words += len(r)
    if words == 0:
        raise ValueError("corpus WER needs at least one reference word")
    return edits / words
