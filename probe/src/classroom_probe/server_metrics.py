"""The server's Prometheus `/metrics`, scraped at 1 Hz (vLLM's gauges and counters)."""

import asyncio
from dataclasses import dataclass, field
from time import perf_counter_ns

import aiohttp

WATCHED = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",  # the same gauge under its name before vLLM 0.10
    "vllm:num_preemptions_total",
    "vllm:generation_tokens_total",
)


def parse_prometheus(text: str, names: tuple[str, ...] = WATCHED) -> dict[str, float]:
    """Sum of every series (all label sets) of each wanted metric name found in the exposition text."""
    wanted = set(names)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            rest = line[line.rfind("}") + 1 :]
        else:
            name = line[:space] if space != -1 else line
            rest = line[space:] if space != -1 else ""
        if name not in wanted:
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        out[name] = out.get(name, 0.0) + value
    return out


@dataclass(slots=True)
class ServerSeries:
    url: str | None
    available: bool = False
    reason: str = ""
    samples: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    first: dict[str, float] | None = None
    last: dict[str, float] | None = None


class MetricsScraper:
    def __init__(self, session: aiohttp.ClientSession, url: str | None, headers: dict[str, str],
                 interval: float = 1.0, max_samples: int = 7 * 24 * 3600) -> None:
        self.session = session
        self.headers = headers
        self.interval = interval
        self.max_samples = max_samples
        self.series = ServerSeries(url)
        if url is None:
            self.series.reason = "disabled"

    async def scrape(self) -> dict[str, float] | None:
        url = self.series.url
        if url is None:
            return None
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            async with self.session.get(url, headers=self.headers, timeout=timeout) as resp:
                if resp.status != 200:
                    self.series.reason = f"HTTP {resp.status} from {url}"
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.series.reason = f"{type(exc).__name__}: {exc}"
            return None
        values = parse_prometheus(text)
        if not values:
            self.series.reason = "no vllm:* metrics in the exposition"
            return None
        self.series.available = True
        self.series.reason = ""
        return values

    async def baseline(self) -> None:
        self.series.first = await self.scrape()

    async def final(self) -> None:
        self.series.last = await self.scrape()

    async def loop(self, stop: asyncio.Event) -> None:
        if self.series.first is None:
            return  # no /metrics at the start: nothing to watch
        for _ in range(self.max_samples):
            values = await self.scrape()
            if values is not None:
                self.series.samples.append((perf_counter_ns(), values))
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
                return
            except TimeoutError:
                continue
