"""Makespan of the planner's shards against one job per file (FIFO) and equal-count chunks.

Simulates ``k`` GPU slots on a skewed batch: many short calls (log-normal, median ~1 min)
and a few one-hour recordings, in arrival order. Processing time is taken as proportional
to audio duration. Prints each strategy's makespan over the lower bound
``max(total / k, longest)`` (1.00 is perfect).

- planner: ``balance()`` into k shards (LPT), one shard per slot
- fifo: one job per file, each taken by the next free slot in arrival order (the paper's
  setup: Kueue admits jobs as slots free up)
- chunks: files cut into k consecutive chunks of equal count

Usage: ``python bench/plan_makespan.py [--seeds 20]``
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics

from components.plan.planner import balance, lower_bound, makespan


def skewed_batch(rng: random.Random, short: int, long: int) -> list[float]:
    """Durations in seconds, in arrival order: short calls with the long files mixed in."""
    files = [min(rng.lognormvariate(4.1, 0.9), 1800.0) for _ in range(short)]
    files += [rng.uniform(3300, 3900) for _ in range(long)]
    rng.shuffle(files)
    return files


def fifo(weights: list[float], slots: int) -> float:
    """Makespan of one job per file, each started on the first free slot in arrival order."""
    free = [0.0] * slots
    for w in weights:
        heapq.heappush(free, heapq.heappop(free) + w)
    return max(free)


def chunks(weights: list[float], slots: int) -> float:
    """Makespan of ``slots`` consecutive chunks of (nearly) equal file count."""
    size, extra = divmod(len(weights), slots)
    bounds, start = [], 0
    for i in range(slots):
        end = start + size + (i < extra)
        bounds.append(list(range(start, end)))
        start = end
    return makespan(weights, bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    print("| slots | files (short + 1-h) | planner | fifo | chunks |")
    print("|---:|---:|---:|---:|---:|")
    for slots, short, long in ((7, 300, 3), (7, 1000, 6), (14, 1000, 10), (28, 3000, 20)):
        ratios: dict[str, list[float]] = {"planner": [], "fifo": [], "chunks": []}
        for seed in range(args.seeds):
            w = skewed_batch(random.Random(seed), short, long)
            lb = lower_bound(w, slots)
            ratios["planner"].append(makespan(w, balance(w, slots)) / lb)
            ratios["fifo"].append(fifo(w, slots) / lb)
            ratios["chunks"].append(chunks(w, slots) / lb)
        cells = " | ".join(f"{statistics.mean(r):.3f} (max {max(r):.3f})" for r in ratios.values())
        print(f"| {slots} | {short} + {long} | {cells} |")


if __name__ == "__main__":
    main()
