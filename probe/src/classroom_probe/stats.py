"""Bounded-memory distribution summaries.

`Reservoir` keeps every value until `capacity`, then a uniform random sample (Vitter's algorithm R)
with a seeded generator, so a 200K-request batch costs the same memory as a 100-request one.
Count, sum, min and max stay exact. Percentiles interpolate linearly between order statistics,
as `numpy.percentile` does by default (what `vllm bench serve` reports). Reservoirs filled in
different processes merge into one uniform sample of everything they saw (`merge`).
"""

import math
import random
from array import array
from collections.abc import Iterable, Sequence
from typing import TypedDict

PERCENTILES = (50, 90, 95, 99)
DEFAULT_CAPACITY = 100_000


class Summary(TypedDict):
    """count, mean, p50/p90/p95/p99, min, max; None where count is 0; `exact` is false once sampled."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None
    exact: bool


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks, on an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    rank = (len(sorted_values) - 1) * pct / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = rank - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


class Reservoir:
    """Exact count/sum/min/max plus a bounded uniform sample for percentiles."""

    __slots__ = ("_rng", "capacity", "count", "max", "min", "sample", "total")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, seed: int = 0) -> None:
        self.capacity = capacity
        # A C array of doubles: 8 bytes a value where a list of Python floats costs about 32.
        self.sample: array[float] = array("d")
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if len(self.sample) < self.capacity:
            self.sample.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot < self.capacity:
                self.sample[slot] = value

    def extend(self, values: Iterable[float]) -> None:
        batch = values if isinstance(values, list) else list(values)
        if not batch:
            return
        if len(self.sample) + len(batch) <= self.capacity:
            # Below capacity nothing is sampled away: bulk operations in C instead of one call per value.
            self.sample.extend(batch)
            self.count += len(batch)
            self.total += sum(batch)
            lo, hi = min(batch), max(batch)
            self.min = min(self.min, lo)
            self.max = max(self.max, hi)
            return
        for v in batch:
            self.add(v)

    def merge(self, other: "Reservoir") -> None:
        """Fold in a reservoir filled elsewhere; the sample stays uniform over both streams.

        Each side stands for `count` values with `len(sample)` kept, so the merged sample takes from
        each side in proportion to the values it stands for."""
        if not other.count:
            return
        mine, theirs = self.count, other.count
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if len(self.sample) + len(other.sample) <= self.capacity:
            self.sample.extend(other.sample)  # both exact: nothing sampled away yet
            return
        want = round(self.capacity * mine / (mine + theirs))
        want = max(self.capacity - len(other.sample), min(want, len(self.sample)))
        kept = self._rng.sample(list(self.sample), want) + self._rng.sample(list(other.sample), self.capacity - want)
        self.sample = array("d", kept)

    @property
    def exact(self) -> bool:
        return self.count <= self.capacity

    def summary(self, scale: float = 1.0, digits: int = 3) -> Summary:
        """count, mean, p50/p90/p95/p99, min, max (values multiplied by `scale`), and whether exact."""
        if not self.count:
            return Summary(count=0, mean=None, p50=None, p90=None, p95=None, p99=None, min=None, max=None, exact=True)
        ordered = sorted(self.sample)

        def pct(p: float) -> float:
            return round(percentile(ordered, p) * scale, digits)

        return Summary(count=self.count, mean=round(self.total / self.count * scale, digits), p50=pct(50),
                       p90=pct(90), p95=pct(95), p99=pct(99), min=round(self.min * scale, digits),
                       max=round(self.max * scale, digits), exact=self.exact)

    def quantile(self, pct: float) -> float | None:
        if not self.sample:
            return None
        return percentile(sorted(self.sample), pct)

    def histogram(self, bins: int = 30, scale: float = 1.0) -> Histogram:
        """Equal-width histogram of the sample (edges scaled), for plots."""
        if not self.sample:
            return Histogram(edges=[], counts=[])
        lo, hi = min(self.sample), max(self.sample)
        if hi <= lo:
            return Histogram(edges=[lo * scale, lo * scale], counts=[len(self.sample)])
        width = (hi - lo) / bins
        counts = [0] * bins
        for v in self.sample:
            counts[min(int((v - lo) / width), bins - 1)] += 1
        edges = [round((lo + i * width) * scale, 4) for i in range(bins + 1)]
        return Histogram(edges=edges, counts=counts)
