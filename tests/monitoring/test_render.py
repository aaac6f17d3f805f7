"""What the role renders for the dashboard and for Grafana (one list of panels, the same PromQL in both), the metric
names picked by vLLM version, every expression parsed by promtool, and bad inputs refused with the variable named
(a value from -e is a string: it is judged as a number)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.monitoring.conftest import promtool, run_render


def grafana(rendered: Path) -> dict[str, object]:
    return json.loads((rendered / "grafana-dashboard.json").read_text())


def dashboard(rendered: Path) -> dict[str, object]:
    return json.loads((rendered / "dashboard.json").read_text())


def test_grafana_dashboard_structure(rendered: Path) -> None:
    doc = grafana(rendered)
    assert doc["uid"] == "classroom-vllm" and isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    variables = doc["templating"]["list"]  # type: ignore[index]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [("datasource", "datasource", "prometheus")]
    panels = doc["panels"]
    assert isinstance(panels, list) and panels
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for p in panels:
        assert p["type"] in {"stat", "timeseries"}, p
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}"
            # Grafana writes a label in a legend as {{label}}; a single brace is a literal.
            assert not re.search(r"(?<!\{)\{\w+\}(?!\})", t.get("legendFormat", "")), t
    # No panel overlaps another.
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells))


def test_the_page_and_grafana_show_the_same_promql(rendered: Path) -> None:
    page = dashboard(rendered)
    page_exprs = [q["expr"] for p in page["panels"] for q in p["queries"]]  # type: ignore[index, union-attr]
    page_exprs += [t["expr"] for t in page["tiles"] if "expr" in t]  # type: ignore[union-attr, operator]
    grafana_exprs = [t["expr"] for p in grafana(rendered)["panels"] for t in p["targets"]]  # type: ignore[union-attr, index]
    for expr in page_exprs:
        assert expr in grafana_exprs, expr
    titles = {p["title"] for p in page["panels"]}  # type: ignore[union-attr, index]
    assert {"GPU utilisation", "GPU memory used", "Requests running and waiting", "Time to first token",
            "Inter-token latency", "Output tokens per second", "KV cache usage", "vLLM restarts by systemd"} == titles
    assert {t["check"] for t in page["tiles"] if t["kind"] == "verdict"} == {"gate", "daily"}  # type: ignore[union-attr, index]


def test_every_expression_parses(rendered: Path, tmp_path: Path) -> None:
    """promtool parses each expression of the page and of Grafana, written as recording rules."""
    exprs = sorted({t["expr"] for p in grafana(rendered)["panels"] for t in p["targets"]})  # type: ignore[union-attr, index]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": e}
                                                          for i, e in enumerate(exprs)]}]}
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump(rules))
    out = promtool("check", "rules", str(tmp_path / "exprs.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_metric_names_are_picked_by_vllm_version(rendered: Path, tmp_path: Path) -> None:
    """0.26.0 (the default, as the classroom box pins it) names the per-token interval inter_token_latency_seconds;
    0.10 still named it time_per_output_token_seconds."""
    assert "vllm:inter_token_latency_seconds_bucket" in (rendered / "dashboard.json").read_text()
    assert "vllm:time_per_output_token_seconds" not in (rendered / "dashboard.json").read_text()
    proc = run_render(tmp_path / "old", monitoring_vllm_version="0.10.2")
    assert proc.returncode == 0, proc.stdout[-2000:]
    exprs = (tmp_path / "old" / "dashboard.json").read_text()
    assert "vllm:time_per_output_token_seconds_bucket" in exprs and "inter_token_latency" not in exprs
    assert "vLLM 0.10.2" in (tmp_path / "old" / "classroom.rules.yml").read_text()


# Each bad value as `-e name=value` gives it (a string; a list as JSON); the message must name the variable.
BAD: list[tuple[str, object, str]] = [
    ("monitoring_prometheus_retention_days", "thirty", "monitoring_prometheus_retention_days"),
    ("monitoring_prometheus_retention_days", "0",
     "monitoring_prometheus_retention_days is 0; it must be a number of at least 1 and at most 3650"),
    ("monitoring_prometheus_port", "70000",
     "monitoring_prometheus_port is 70000; it must be a number of at least 1 and at most 65535"),
    ("monitoring_dashboard_listen_address", "0.0.0.0", "monitoring_dashboard_key is empty"),
    ("monitoring_node_exporter_port", "9090", "monitoring_prometheus_port and monitoring_node_exporter_port (9090)"),
    ("monitoring_vllm_version", "0.9.2", "the vLLM version on the box, 0.10.0 or newer"),
    ("monitoring_watched_units", "haproxy.service", "on the command line give them as JSON"),
    ("monitoring_watched_units", ["haproxy"], "not one: haproxy"),
]


@pytest.mark.parametrize(("name", "value", "words"), BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_bad_inputs_are_refused_naming_the_variable(tmp_path: Path, name: str, value: object, words: str) -> None:
    proc = run_render(tmp_path / "out", **{name: value})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"accepted {name}={value}"
    assert words in " ".join(out.split()), out[-3000:]
    assert "Traceback" not in out
    assert not (tmp_path / "out").exists(), "nothing may be written before the inputs pass"
