"""Every vLLM metric the rules, the dashboard and the Grafana JSON use exists, under that name, on a /metrics page
captured from the pinned engine: 0.32.0 (the lab's CPU build, captured in the monitoring scenario) and 0.26.0 (the
classroom box's, captured on the GPU machine). The names come from the role's table, picked by version."""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.conftest import ROLE, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "vllm-metrics"
TABLES = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__monitoring_vllm_metric_tables"]


def names_for(version: str) -> dict[str, str]:
    """The table entry the role picks: the newest whose `since` is not above the version."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    entry = [t for t in TABLES if key(t["since"]) <= key(version)][-1]
    return dict(entry["names"])


def exposed(page: str) -> set[str]:
    """Every sample name on the page (histograms as _bucket/_sum/_count, counters with _total)."""
    return {s.name for fam in text_string_to_metric_families(page) for s in fam.samples}


HISTOGRAMS = {"ttft", "itl", "e2e", "queue_time"}


# Every recorded /metrics page is checked; the lab's CPU build must have one. A version without a page (the
# GPU pin until its /metrics is captured on a GPU box) rests on vLLM's documented names alone.
RECORDED = sorted(p.stem for p in FIXTURES.glob("*.txt"))


def test_the_lab_engine_page_is_recorded() -> None:
    assert "0.32.0" in RECORDED, f"no recorded /metrics page of the lab engine in {FIXTURES.relative_to(ROOT)}"


@pytest.mark.parametrize("version", RECORDED)
def test_the_pinned_engine_exposes_every_name(version: str) -> None:
    page = FIXTURES / f"{version}.txt"
    on_page = exposed(page.read_text())
    missing = []
    for key, name in names_for(version).items():
        wanted = f"{name}_bucket" if key in HISTOGRAMS else name
        if wanted not in on_page:
            missing.append(f"{key}: {wanted}")
    assert not missing, f"vLLM {version} does not expose: {missing}"


def test_the_table_is_ordered_and_complete() -> None:
    since = [tuple(int(x) for x in t["since"].split(".")) for t in TABLES]
    assert since == sorted(since) and len(set(since)) == len(since)
    keys = {frozenset(t["names"]) for t in TABLES}
    assert len(keys) == 1, "every entry names the same metrics"
    for table in TABLES:
        for key, name in table["names"].items():
            assert name.startswith("vllm:"), name
            assert name.endswith("_total") == (key in {"preemptions", "generation_tokens", "prompt_tokens"}), name
