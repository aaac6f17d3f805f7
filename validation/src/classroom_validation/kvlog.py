"""Reads vLLM's start-up log for the KV-cache capacity it planned.

vLLM up to 0.29 logs two lines (`GPU KV cache size: N tokens`, then
`Maximum concurrency for X tokens per request: Y.YYx`); 0.30 and later print both on one line
(`GPU KV cache size: N tokens, Maximum concurrency for X tokens per request: Y.YYx`).
Both are matched wherever they appear in a line, so either layout and any log prefix work.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_NUM = r"(\d[\d,]*)"
# The pool is named by the device ("GPU", "CPU"; 0.32 adds " + host" with host offload).
KV_TOKENS = re.compile(r"(\w+(?: \+ host)?) KV cache size:\s*" + _NUM + r"\s*tokens", re.IGNORECASE)
MAX_CONCURRENCY = re.compile(
    r"Maximum concurrency for\s*" + _NUM + r"\s*tokens per request:\s*(\d+(?:\.\d+)?)x", re.IGNORECASE
)
AVAILABLE_KV = re.compile(r"Available KV cache memory:\s*(\d+(?:\.\d+)?)\s*GiB", re.IGNORECASE)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class KvLog:
    """The last KV figures of one start-up log (a log holds one engine start)."""

    gpu_kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    tokens_per_request: int | None = None
    available_kv_gib: list[float] = field(default_factory=list)
    pool: str | None = None  # GPU, CPU, ...
    layout: str = "absent"  # one-line | two-line | absent | partial
    lines: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.gpu_kv_cache_tokens is not None and self.max_concurrency is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_kv_log(text: str) -> KvLog:
    tokens: int | None = None
    pool: str | None = None
    concurrency: float | None = None
    per_request: int | None = None
    available: list[float] = []
    lines: list[str] = []
    same_line = False
    for line in text.splitlines():
        kv = KV_TOKENS.search(line)
        mc = MAX_CONCURRENCY.search(line)
        av = AVAILABLE_KV.search(line)
        if av:
            available.append(float(av.group(1)))
            lines.append(line.strip())
        if kv:
            pool, tokens = kv.group(1), _int(kv.group(2))
        if mc:
            per_request, concurrency = _int(mc.group(1)), float(mc.group(2))
        if kv or mc:
            lines.append(line.strip())
            same_line = bool(kv and mc)
    if tokens is None and concurrency is None:
        layout = "absent"
    elif tokens is None or concurrency is None:
        layout = "partial"
    else:
        layout = "one-line" if same_line else "two-line"
    return KvLog(tokens, concurrency, per_request, available, pool, layout, lines)
