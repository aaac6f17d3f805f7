"""The alert rules as the role renders them: promtool accepts them and Prometheus' config, every classroom alert
passes its unit tests against synthetic series (rules_test.yml), every alert is documented with its condition, and
a rule promtool refuses is refused before it could land."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.monitoring.conftest import ROLE, ROOT, promtool, run_render

HERE = Path(__file__).parent


def alerts(rules_file: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load(rules_file.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules_and_the_config(rendered: Path) -> None:
    for rules in ("classroom.rules.yml", "site.rules.yml"):
        out = promtool("check", "rules", str(rendered / rules))
        assert out.returncode == 0, out.stdout + out.stderr
    out = promtool("check", "config", "--syntax-only", str(rendered / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_passes_its_unit_tests(rendered: Path, tmp_path: Path) -> None:
    shutil.copy(rendered / "classroom.rules.yml", tmp_path)
    shutil.copy(HERE / "rules_test.yml", tmp_path)
    out = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", (HERE / "rules_test.yml").read_text()))
    assert {str(rule["alert"]) for rule in alerts(rendered / "classroom.rules.yml")} == tested, \
        "every classroom alert needs a test in rules_test.yml"


def test_every_alert_is_documented_with_its_condition(rendered: Path) -> None:
    docs = (ROOT / "docs" / "monitoring.md").read_text()
    readme = (ROLE / "README.md").read_text()
    for rule in alerts(rendered / "classroom.rules.yml"):
        assert f"`{rule['alert']}`" in docs, f"docs/monitoring.md does not list {rule['alert']}"
        assert f"`{rule['alert']}`" in readme, f"roles/monitoring/README.md does not list {rule['alert']}"
        labels = rule["labels"]
        assert isinstance(labels, dict) and labels["severity"] in {"page", "warning"}
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and {"summary", "description"} <= set(annotations)


def test_a_rule_promtool_refuses_is_caught_before_it_lands(tmp_path: Path) -> None:
    """The same check the role's template runs on the candidate (validate: promtool check rules %s)."""
    proc = run_render(tmp_path / "broken", monitoring_extra_alert_rules=[{"alert": "Broken", "expr": "rate(up[5m]"}])
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = promtool("check", "rules", str(tmp_path / "broken" / "site.rules.yml"))
    assert out.returncode != 0 and "parse error" in (out.stdout + out.stderr)
